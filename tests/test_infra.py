"""The deployment files in infra/: each parses, carries what its tool requires, pins the Ray
installed here, passes jobs.sweep only flags it has, and holds no secret.

Nothing here talks to AWS or Kubernetes: the launcher config is validated against the schema
shipped inside the installed Ray, the Kubernetes objects field by field, and the CronJob's
launcher script runs against a fake kubectl.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"

# Mirrors the options of pipeline/runtime/sweep.py (`python -m hubscan.jobs.sweep`, `hubscan sweep`): change both
# together. test_sweep_flags_match_jobs_sweep fails when one of these leaves its --help.
SWEEP_FLAGS = frozenset(
    {
        *("--store", "--source", "--search", "--author", "--filter", "--sort", "--limit", "--sweep-id"),
        *("--pipeline-tag", "--library", "--exclude-author", "--plan-only", "--max-in-flight", "--exact"),
    }
)

# Every Ray image and rayVersion must pin the Ray installed here; this equals ray.__version__
# and skips the ~0.7 s of `import ray`.
RAY_VERSION = importlib.metadata.version("ray")

# A Hub user token is "hf_" and 34 letters or digits; 30+ also catches a truncated paste.
HF_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{30,}")
AWS_KEY_ID_RE = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
# Environment variables with these names hold credentials and may only come from a Secret.
SECRET_ENV_RE = re.compile(r"TOKEN|SECRET|PASSWORD|ACCESS_KEY")
# KubeRay pastes spec.entrypoint unquoted into the submitter's shell command line.
SHELL_SYNTAX_RE = re.compile(r"[;|&$<>`\\(){}]")
HF_SECRET = {"name": "hubscan-hf-token", "key": "token"}
# A pip requirement for the hubscan package: `hubscan`, `hubscan[x]`, `hubscan==…`, `hubscan @ git+…`.
HUBSCAN_REQUIREMENT_RE = re.compile(r"hubscan(?:\[[\w,]+\])?\s*(?:$|@|==|~=|>=)")
# Where a sweep command's flags end in a line of shell.
COMMAND_END_RE = re.compile(r"['\";|&>]")
# `hubscan sweep` only counts as a command when flags or the end of the line follow (not prose).
SWEEP_COMMAND_RE = re.compile(r"(?:-m\s+hubscan\.jobs\.sweep\b|\bhubscan\s+sweep(?=\s+--|\s*$))(?P<rest>.*)")

CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


# --- loading ------------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    """Every YAML file under infra/."""
    return sorted(p for p in INFRA.rglob("*") if p.suffix in (".yaml", ".yml"))


def load(path: Path) -> list[Any]:
    """The documents of a YAML file, empty ones dropped."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@cache
def _docs_or_empty(path: Path) -> tuple[Any, ...]:
    # Collection must survive a broken file: test_yaml_parses_into_known_documents reports it.
    try:
        return tuple(load(path))
    except yaml.YAMLError:
        return ()


def all_docs() -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, document) for every mapping document under infra/."""
    for path in yaml_files():
        for doc in _docs_or_empty(path):
            if isinstance(doc, dict):
                yield path, doc


def is_launcher(doc: dict[str, Any]) -> bool:
    """A `ray up` cluster config."""
    return "cluster_name" in doc and "provider" in doc


def is_kustomization(doc: dict[str, Any]) -> bool:
    """A kustomize kustomization.yaml."""
    return doc.get("kind") == "Kustomization"


def k8s_objects(kind: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(where, object) for Kubernetes objects in infra/ files and in the ConfigMaps they define."""
    found = [
        (str(path.relative_to(INFRA)), doc)
        for path, doc in all_docs()
        if "apiVersion" in doc and not is_kustomization(doc)
    ]
    for name, files in configmaps().items():
        for key, text in files.items():
            try:
                docs = list(yaml.safe_load_all(text))
            except yaml.YAMLError:
                continue
            found += [
                (f"configmap {name}/{key}", d) for d in docs if isinstance(d, dict) and "apiVersion" in d
            ]
    return [(where, obj) for where, obj in found if kind is None or obj.get("kind") == kind]


def configmaps() -> dict[str, dict[str, str]]:
    """ConfigMap name -> {key: text}, from ConfigMap objects and kustomize configMapGenerators."""
    maps: dict[str, dict[str, str]] = {}
    for path, doc in all_docs():
        if doc.get("kind") == "ConfigMap" and doc.get("apiVersion") == "v1":
            maps[doc["metadata"]["name"]] = dict(doc.get("data") or {})
        if is_kustomization(doc):
            for gen in doc.get("configMapGenerator") or []:
                files: dict[str, str] = {}
                for entry in gen.get("files") or []:
                    key, _, rel = entry.rpartition("=")
                    source = path.parent / rel
                    files[key or source.name] = source.read_text() if source.is_file() else ""
                for literal in gen.get("literals") or []:
                    key, _, value = literal.partition("=")
                    files[key] = value
                maps[gen["name"]] = files
    return maps


def walk(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(key, value) of every scalar below node; list items carry their list's key."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)
    else:
        yield key, node


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init and regular containers of a pod spec."""
    return list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or [])


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every pod spec inside a Kubernetes object (pod templates at any depth)."""
    if isinstance(obj, dict):
        if isinstance(obj.get("containers"), list):
            yield obj
        for value in obj.values():
            yield from pod_specs(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from pod_specs(item)


def readme_code() -> str:
    """The fenced code blocks of infra/README.md."""
    text = (INFRA / "README.md").read_text()
    return "\n".join(re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S))


def yaml_comments() -> str:
    """Comment lines of every infra YAML file (they show commands users copy)."""
    lines = (line.strip() for path in yaml_files() for line in path.read_text().splitlines())
    return "\n".join(line.lstrip("#").strip() for line in lines if line.startswith("#"))


def sweep_commands(text: str) -> list[list[str]]:
    """Flags of each `python -m hubscan.jobs.sweep` / `hubscan sweep` command in shell-like text."""
    text = re.sub(r"\\\n\s*", " ", text)  # join continued lines
    commands = []
    for line in text.splitlines():
        for match in SWEEP_COMMAND_RE.finditer(line):
            rest = COMMAND_END_RE.split(match["rest"], maxsplit=1)[0]
            commands.append([tok.split("=")[0] for tok in rest.split() if tok.startswith("--")])
    return commands


def ray_image_tag(image: str) -> str | None:
    """The tag of a rayproject/* image, or None for any other image."""
    repo, _, tag = image.partition(":")
    return tag if repo.startswith("rayproject/") else None


def pinned_to_installed_ray(image: str) -> bool:
    """True when a rayproject image's tag is this Ray version, with or without a -py/-cpu suffix."""
    tag = ray_image_tag(image)
    return tag is None or tag == RAY_VERSION or tag.startswith(RAY_VERSION + "-")


def valid_cron(expr: str) -> bool:
    """A standard 5-field cron expression (numbers, names, ranges, lists, steps), as CronJob takes."""
    fields = expr.split()
    if len(fields) != 5:
        return False
    for index, (field, (lo, hi)) in enumerate(zip(fields, CRON_RANGES, strict=True)):
        names = {3: MONTHS, 4: WEEKDAYS}.get(index, ())
        for item in field.split(","):
            match = re.fullmatch(r"(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?", item.lower())
            if not match or (match[2] is not None and int(match[2]) == 0):
                return False
            if match[1] == "*":
                continue
            bounds = []
            for part in match[1].split("-"):
                if part in names:
                    bounds.append(names.index(part) + (1 if names is MONTHS else 0))
                elif part.isdigit():
                    bounds.append(int(part))
                else:
                    return False
            if not all(lo <= b <= hi for b in bounds) or bounds != sorted(bounds):
                return False
    return True


def credentials_in(text: str) -> list[str]:
    """Substrings that look like a real Hub token or AWS access key id."""
    return HF_TOKEN_RE.findall(text) + AWS_KEY_ID_RE.findall(text)


# --- the RayJob contract, shared by every RayJob wherever it is defined -------------------


def check_rayjob(job: dict[str, Any]) -> None:
    """Assert a RayJob runs jobs.sweep against object storage, pinned, with secrets from Secrets."""
    assert job.get("apiVersion") == "ray.io/v1"
    assert job.get("kind") == "RayJob"
    meta = job.get("metadata") or {}
    assert meta.get("name") or meta.get("generateName"), "RayJob needs metadata.name or generateName"
    spec = job["spec"]

    entrypoint = spec.get("entrypoint", "")
    assert not SHELL_SYNTAX_RE.search(entrypoint), f"shell syntax in entrypoint: {entrypoint!r}"
    args = shlex.split(entrypoint)
    assert args[:3] == ["python", "-m", "hubscan.jobs.sweep"], (
        f"entrypoint does not run hubscan.jobs.sweep: {entrypoint!r}"
    )
    flags = [a.split("=")[0] for a in args[3:] if a.startswith("--")]
    assert set(flags) <= SWEEP_FLAGS, f"unknown sweep flags: {sorted(set(flags) - SWEEP_FLAGS)}"
    assert "--store" in flags, "entrypoint must name the store"
    store = args[args.index("--store") + 1]
    # The cluster's disks vanish with it: a store must be object storage.
    assert store.startswith(("s3://", "gs://")), f"--store {store} is not s3:// or gs://"

    assert spec.get("shutdownAfterJobFinishes") is True
    ttl = spec.get("ttlSecondsAfterFinished")
    assert type(ttl) is int and ttl >= 0, "ttlSecondsAfterFinished must be a non-negative int"

    runtime_env_text = spec.get("runtimeEnvYAML", "")
    runtime_env = yaml.safe_load(runtime_env_text) or {}
    pip = runtime_env.get("pip")
    packages = pip.get("packages", []) if isinstance(pip, dict) else pip or []
    assert any(HUBSCAN_REQUIREMENT_RE.match(p) for p in packages), "runtimeEnvYAML pip must install hubscan"
    # Runtime envs are shown by the dashboard and `ray job list`.
    assert not SECRET_ENV_RE.search(runtime_env_text), "no credentials in runtimeEnvYAML"

    cluster = spec["rayClusterSpec"]
    assert cluster.get("rayVersion") == RAY_VERSION, (
        f"rayVersion {cluster.get('rayVersion')} != {RAY_VERSION}"
    )
    head = cluster["headGroupSpec"]
    workers = cluster.get("workerGroupSpecs")
    assert isinstance(workers, list) and workers, "rayClusterSpec.workerGroupSpecs must list a worker group"
    for group in workers:
        assert group.get("groupName")
        counts = [group.get(k) for k in ("minReplicas", "replicas", "maxReplicas")]
        assert all(type(c) is int for c in counts), f"worker replica counts must be ints: {counts}"
        assert counts == sorted(counts), f"need minReplicas <= replicas <= maxReplicas: {counts}"
    for group in [head, *workers]:
        pod = group["template"]["spec"]
        ray_container = pod["containers"][0]
        image = ray_container.get("image", "")
        assert ray_image_tag(image) is not None, f"Ray container image {image} is not a rayproject image"
        assert pinned_to_installed_ray(image), f"{image} is not Ray {RAY_VERSION}"
        env = {e["name"]: e for e in ray_container.get("env") or []}
        assert "HF_TOKEN" in env, f"{ray_container['name']} has no HF_TOKEN"
        assert "value" not in env["HF_TOKEN"], "HF_TOKEN must not be a literal value"
        assert env["HF_TOKEN"].get("valueFrom", {}).get("secretKeyRef") == HF_SECRET
        if store.startswith("s3://") and not pod.get("serviceAccountName"):
            # Without a service account (IRSA, Pod Identity) the keys must come from a Secret.
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                assert name in env, f"{ray_container['name']} has no {name} for the s3:// store"
                assert "secretKeyRef" in env[name].get("valueFrom", {}), f"{name} must come from a Secret"


# --- every file ---------------------------------------------------------------------------


def test_infra_has_every_deployment_file():
    kinds = {doc.get("kind") for _, doc in all_docs()}
    assert any(is_launcher(doc) for _, doc in all_docs()), "no ray up cluster config"
    assert {"RayJob", "CronJob", "Secret"} <= kinds
    assert (INFRA / "README.md").is_file()


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_yaml_parses_into_known_documents(path):
    docs = load(path)
    assert docs, f"{path.name} is empty"
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
        if is_launcher(doc) or is_kustomization(doc):
            continue
        assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: not a launcher or Kubernetes object"
        meta = doc.get("metadata") or {}
        assert meta.get("name") or meta.get("generateName"), f"{path.name}: {doc['kind']} has no name"


def test_no_credentials_anywhere():
    for path in sorted(p for p in INFRA.rglob("*") if p.is_file()):
        assert not credentials_in(path.read_text(errors="replace")), f"{path.name} holds a credential"
    for where, secret in k8s_objects("Secret"):
        # base64 would hide a token from the scan above and from review.
        assert "data" not in secret, f"{where}: example Secrets use stringData placeholders"
        for key, value in (secret.get("stringData") or {}).items():
            assert str(value).startswith("REPLACE-"), f"{where}: {key} is not a REPLACE-... placeholder"


def test_credential_env_vars_come_from_the_example_secrets():
    defined = {
        (secret["metadata"]["name"], key)
        for _, secret in k8s_objects("Secret")
        for key in {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
    }
    for where, obj in k8s_objects():
        for pod in pod_specs(obj):
            for container in containers(pod):
                for var in container.get("env") or []:
                    ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                    if SECRET_ENV_RE.search(var["name"]):
                        assert "value" not in var and ref, f"{where}: {var['name']} must come from a Secret"
                    if ref:
                        assert (ref["name"], ref["key"]) in defined, (
                            f"{where}: {ref} not in secret-example.yaml"
                        )


def test_hf_token_is_never_assigned_a_literal():
    for path, doc in all_docs():
        for key, value in walk(doc):
            if key == "runtimeEnvYAML":
                continue  # checked by check_rayjob: no credential names at all
            for assigned in re.findall(r"HF_TOKEN=(\S*)", str(value)):
                assert assigned.startswith(('"$(', "$(")), f"{path.name}: HF_TOKEN={assigned[:8]}…"


def test_ray_images_pin_the_installed_ray():
    images = [
        str(v) for _, doc in all_docs() for k, v in walk(doc) if k in ("image", "head_image", "worker_image")
    ]
    ray_images = [i for i in images if ray_image_tag(i) is not None]
    assert ray_images, "no rayproject image found under infra/"
    drifted = [i for i in ray_images if not pinned_to_installed_ray(i)]
    assert not drifted, f"images not on Ray {RAY_VERSION} (installed here): {drifted}"
    versions = {str(v) for _, doc in all_docs() for k, v in walk(doc) if k == "rayVersion"}
    assert versions <= {RAY_VERSION}, f"rayVersion {versions} != installed Ray {RAY_VERSION}"


def test_sweep_commands_pass_only_known_flags():
    # Parsed values, so a folded entrypoint is one line; k8s_objects adds ConfigMap-held RayJobs.
    docs = [doc for _, doc in all_docs()] + [obj for _, obj in k8s_objects()]
    texts = [v for doc in docs for _, v in walk(doc) if isinstance(v, str)]
    commands = [c for text in [*texts, yaml_comments(), readme_code()] for c in sweep_commands(text)]
    assert commands, "no jobs.sweep command found under infra/"
    for flags in commands:
        assert set(flags) <= SWEEP_FLAGS, f"unknown sweep flags {sorted(set(flags) - SWEEP_FLAGS)}"
        assert "--store" in flags, f"a sweep command without --store: {flags}"


def test_one_git_url_to_replace():
    urls = set()
    for path in sorted(p for p in INFRA.rglob("*") if p.is_file()):
        urls |= set(re.findall(r"git\+https://[^\s\"'`]+", path.read_text()))
    assert len(urls) == 1, f"installs from several git URLs: {sorted(urls)}"
    assert urls.pop() in (INFRA / "README.md").read_text(), "README must document the git URL to replace"


# --- ray up -------------------------------------------------------------------------------


def launcher_configs() -> list[tuple[str, dict[str, Any]]]:
    """(file, config) for every `ray up` config under infra/."""
    return [(str(p.relative_to(INFRA)), d) for p, d in all_docs() if is_launcher(d)]


@pytest.mark.parametrize("config", [pytest.param(c, id=where) for where, c in launcher_configs()])
def test_cluster_launcher_config(config):
    spec = importlib.util.find_spec("ray")
    assert spec and spec.origin
    schema = json.loads((Path(spec.origin).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)

    assert config["provider"]["type"] == "aws"
    assert config["provider"].get("region"), "provider.region must be set"
    types = config["available_node_types"]
    assert config.get("head_node_type") in types, "head_node_type must name an available node type"
    top_max = config.get("max_workers")
    assert type(top_max) is int
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert workers, "no worker node type"
    for name, node_type in workers.items():
        low, high = node_type.get("min_workers"), node_type.get("max_workers")
        assert type(low) is int and type(high) is int, f"{name}: min/max_workers must be ints"
        assert 0 <= low <= high <= top_max, f"{name}: need 0 <= min_workers <= max_workers <= {top_max}"

    installs = [c for c in config.get("setup_commands", []) if "pip install" in c]
    assert any(HUBSCAN_REQUIREMENT_RE.match(arg) for c in installs for arg in shlex.split(c)), (
        "setup_commands must pip install hubscan"
    )
    image = config.get("docker", {}).get("image", "")
    assert ray_image_tag(image) is not None and pinned_to_installed_ray(image), (
        f"{image} is not Ray {RAY_VERSION}"
    )
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert any("ray start --address" in c for c in config["worker_start_ray_commands"])


# --- KubeRay ------------------------------------------------------------------------------


@pytest.mark.parametrize("job", [pytest.param(j, id=where) for where, j in k8s_objects("RayJob")])
def test_rayjob(job):
    check_rayjob(job)


def _ray_container(job: dict[str, Any], group: str) -> dict[str, Any]:
    cluster = job["spec"]["rayClusterSpec"]
    spec = cluster["headGroupSpec"] if group == "head" else cluster["workerGroupSpecs"][0]
    return spec["template"]["spec"]["containers"][0]


def _set_entrypoint(job: dict[str, Any], edit: Callable[[str], str]) -> None:
    job["spec"]["entrypoint"] = edit(job["spec"]["entrypoint"])


# Each breaks one rule of check_rayjob, to prove the check can fail.
MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "literal token": lambda j: next(
        e for e in _ray_container(j, "worker")["env"] if e["name"] == "HF_TOKEN"
    ).update(value="x"),
    "image drift": lambda j: _ray_container(j, "head").update(image="rayproject/ray:2.9.0-py311-cpu"),
    "rayVersion drift": lambda j: j["spec"]["rayClusterSpec"].update(rayVersion="2.9.0"),
    "cluster kept": lambda j: j["spec"].update(shutdownAfterJobFinishes=False),
    "unknown flag": lambda j: _set_entrypoint(j, lambda e: e + " --dry-run"),
    "shell syntax": lambda j: _set_entrypoint(j, lambda e: e + " || true"),
    "local store": lambda j: _set_entrypoint(j, lambda e: re.sub(r"--store \S+", "--store /tmp/store", e)),
    "no workers": lambda j: j["spec"]["rayClusterSpec"].pop("workerGroupSpecs"),
    "token in runtime env": lambda j: j["spec"].update(
        runtimeEnvYAML=j["spec"]["runtimeEnvYAML"] + "env_vars:\n  HF_TOKEN: x\n"
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_rayjob_check_catches(mutation):
    job = copy.deepcopy(k8s_objects("RayJob")[0][1])
    MUTATIONS[mutation](job)
    with pytest.raises(AssertionError):
        check_rayjob(job)


# --- the nightly CronJob --------------------------------------------------------------------


def launcher_container(cronjob: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, container) of the CronJob pod that creates the RayJob."""
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def launcher_script(container: dict[str, Any]) -> str:
    """The shell the launcher container runs."""
    return " ".join([*container.get("command", []), *container.get("args", [])])


def created_rayjob(cronjob: dict[str, Any]) -> dict[str, Any]:
    """The RayJob the CronJob's script passes to `kubectl create -f`, found through its ConfigMap."""
    pod, container = launcher_container(cronjob)
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    match = re.search(r"kubectl create -f \"?\$?\{?(\w[\w./-]*)", launcher_script(container))
    assert match, "the launcher never runs `kubectl create -f`"
    path = env.get(match[1]) or match[1]
    mounts = {m["name"]: m["mountPath"].rstrip("/") for m in container.get("volumeMounts") or []}
    volume = next(v for v in pod["volumes"] if mounts.get(v["name"]) == str(Path(path).parent))
    name = volume["configMap"]["name"]
    files = configmaps().get(name)
    assert files is not None, f"ConfigMap {name} is neither in infra/ nor generated by a kustomization"
    assert Path(path).name in files, f"ConfigMap {name} has no key {Path(path).name}"
    jobs = [d for d in yaml.safe_load_all(files[Path(path).name]) if d]
    assert len(jobs) == 1, "the ConfigMap must hold exactly one RayJob"
    return jobs[0]


@pytest.mark.parametrize("cronjob", [pytest.param(c, id=where) for where, c in k8s_objects("CronJob")])
def test_cronjob(cronjob):
    assert cronjob["apiVersion"] == "batch/v1"
    spec = cronjob["spec"]
    assert valid_cron(spec["schedule"]), f"not a 5-field cron expression: {spec['schedule']!r}"
    assert spec.get("concurrencyPolicy") == "Forbid"
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        assert type(spec.get(key)) is int and spec[key] >= 0, f"{key} must be a non-negative int"

    job = created_rayjob(cronjob)
    check_rayjob(job)
    # The launcher waits for the sweep: it must outlast the RayJob's own deadline, and end
    # before the next run, which Forbid would otherwise skip.
    launcher_deadline = spec["jobTemplate"]["spec"].get("activeDeadlineSeconds")
    assert type(launcher_deadline) is int and launcher_deadline < 24 * 3600
    assert job["spec"].get("activeDeadlineSeconds", 0) < launcher_deadline

    pod, container = launcher_container(cronjob)
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    labels = (job.get("metadata") or {}).get("labels") or {}
    selector = dict(pair.split("=", 1) for pair in env["RAYJOB_SELECTOR"].split(","))
    assert selector.items() <= labels.items(), "RAYJOB_SELECTOR must match the RayJob's labels"

    account = pod.get("serviceAccountName")
    accounts = {o["metadata"].get("name") for _, o in k8s_objects("ServiceAccount")}
    assert account in accounts, f"ServiceAccount {account} is not defined under infra/"
    granted: set[str] = set()
    for _, binding in k8s_objects("RoleBinding"):
        if not any(
            s.get("kind") == "ServiceAccount" and s.get("name") == account for s in binding["subjects"]
        ):
            continue
        role = next(
            r
            for _, r in k8s_objects(binding["roleRef"]["kind"])
            if r["metadata"]["name"] == binding["roleRef"]["name"]
        )
        for rule in role["rules"]:
            if "ray.io" in rule["apiGroups"] and "rayjobs" in rule["resources"]:
                granted |= set(rule["verbs"])
    assert {"create", "get", "list", "delete"} <= granted, f"{account} may only {sorted(granted)} rayjobs"


def test_kustomization_files_exist():
    for path, doc in all_docs():
        if is_kustomization(doc):
            for rel in doc.get("resources") or []:
                assert (path.parent / rel).is_file(), f"{path.name}: missing resource {rel}"
            for gen in doc.get("configMapGenerator") or []:
                for entry in gen.get("files") or []:
                    assert (path.parent / entry.rpartition("=")[2]).is_file(), f"{path.name}: missing {entry}"


FAKE_KUBECTL = """#!/bin/sh
# Answers the calls the launcher makes from files in $FAKE; logs each call.
echo "$*" >> "$FAKE/calls"
case "$1 $2" in
  "get rayjobs") cat "$FAKE/list" ;;
  "create -f") echo hubscan-sweep-new ;;
  "get rayjob")
    case "$*" in
      *status.message*) cat "$FAKE/message" ;;
      *) if [ -e "$FAKE/polled" ]; then cat "$FAKE/final"; else touch "$FAKE/polled"; echo Running/RUNNING; fi ;;
    esac ;;
esac
"""


@pytest.mark.skipif(not (shutil.which("sh") and shutil.which("awk")), reason="needs sh and awk")
@pytest.mark.parametrize(
    ("listed", "final", "message", "rc", "created", "deleted"),
    [
        pytest.param("", "Complete/SUCCEEDED", "", 0, True, [], id="creates and waits"),
        pytest.param(
            "", "Complete/FAILED", "failed with exit code 3, last logs", 0, True, [], id="exit 3 is done"
        ),
        pytest.param("", "Complete/FAILED", "failed with exit code 1", 1, True, [], id="exit 1 fails"),
        pytest.param(
            "old Complete\nrun \n", "Failed/", "DeadlineExceeded", 1, False, [], id="adopts running"
        ),
        pytest.param(
            "".join(f"j{i} Complete\n" for i in range(9)),
            "Complete/SUCCEEDED",
            "",
            0,
            True,
            ["j0", "j1"],
            id="prunes",
        ),
    ],
)
def test_cronjob_launcher_script(tmp_path, listed, final, message, rc, created, deleted):
    (cronjob,) = (c for _, c in k8s_objects("CronJob"))
    _, container = launcher_container(cronjob)
    assert container["command"][:2] == ["/bin/sh", "-c"]
    env = {e["name"]: e["value"] for e in container["env"]}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    for name, text in {"list": listed, "final": final + "\n", "message": message + "\n"}.items():
        (tmp_path / name).write_text(text)
    env.update(FAKE=str(tmp_path), POLL_SECONDS="0", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["sh", "-c", container["args"][0]], env=env, capture_output=True, text=True, timeout=20
    )
    calls = (tmp_path / "calls").read_text().splitlines()
    assert result.returncode == rc, result.stdout + result.stderr
    assert any(c.startswith(f"create -f {env['RAYJOB_MANIFEST']}") for c in calls) == created
    assert [c.split()[-1] for c in calls if c.startswith("delete rayjob")] == deleted


# --- the checkers themselves ----------------------------------------------------------------


@pytest.mark.parametrize("expr", ["17 2 * * *", "*/15 0-6 1,15 jan-mar mon-fri", "0 0 * * 7", "5/10 * * * *"])
def test_valid_cron_accepts(expr):
    assert valid_cron(expr)


@pytest.mark.parametrize(
    "expr",
    [
        "17 2 * *",
        "17 2 * * * *",
        "60 2 * * *",
        "17 24 * * *",
        "0 0 0 * *",
        "0 0 * 13 *",
        "0 0 * * 8",
        "*/0 * * * *",
        "@daily",
        "0 6-2 * * *",
        "a b c d e",
    ],
)
def test_valid_cron_rejects(expr):
    assert not valid_cron(expr)


def test_credential_patterns():
    # Built at run time, so this file never contains a token-shaped string itself.
    assert credentials_in("token: hf_" + "Ab1" * 12)
    assert credentials_in("AKIA" + "ABCDEFGH23456789")
    assert not credentials_in("token: REPLACE-WITH-YOUR-HF-READ-TOKEN  ~/.config/hubscan/hf_token")


def test_sweep_command_parser():
    text = "ray job submit -- python -m hubscan.jobs.sweep --store s3://b/p \\\n  --sort downloads --sweep-id=n' >> log"
    assert sweep_commands(text) == [["--store", "--sort", "--sweep-id"]]
    assert sweep_commands("hubscan sweep --store x --bogus 1") == [["--store", "--bogus"]]


def test_sweep_flags_match_jobs_sweep():
    source = ROOT / "jobs" / "sweep.py"
    if not source.is_file() or "__main__" not in source.read_text():
        pytest.skip("pipeline/runtime/sweep.py has no command-line entry point yet")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    result = subprocess.run(
        [sys.executable, "-m", "hubscan.jobs.sweep", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", result.stdout))
    missing = sorted(SWEEP_FLAGS - shown)
    assert not missing, (
        f"SWEEP_FLAGS lists flags `python -m hubscan.jobs.sweep --help` does not show: {missing}"
    )
