"""Data flows one way: a pipeline stage imports only from stages before it, and every top-level
folder imports only the folders below it (the product never imports its test helpers)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipeline"
# Stage order, the flow read bottom-up: source -> reader -> fingerprint -> comparison -> store -> the
# per-model chain -> the Ray runtime -> the flag engine -> outputs. Modules at the package root
# (errors, config, http, roles, keys, summary) are shared.
STAGES = [
    "sources",
    "readers",
    "fingerprints",
    "comparison",
    "storage",
    "chain",
    "runtime",
    "flagging",
    "outputs",
]
# Which project folders each top-level folder may import. `queries` holds SQL only (read as package
# data); `testbed` (fake Hub, demo-hub generator, writers, controls) serves the demo, benches and tests.
ALLOWED = {
    "pipeline": {"pipeline"},
    "queries": set(),
    "jobs": {"pipeline", "jobs", "queries"},
    "testbed": {"pipeline", "testbed"},
    "bench": {"pipeline", "jobs", "queries", "testbed", "bench"},
    "tests": {"pipeline", "jobs", "queries", "testbed", "bench", "tests"},
}
PROJECT = set(ALLOWED)
# The one product module that starts the demo hub: `hubscan demo` runs the real path against it, importing
# the test bed only when it runs (jobs.demo.demo_parts).
TESTBED_USERS = {ROOT / "jobs" / "demo.py"}
NEVER_IN_PRODUCT = ("torch", "transformers")


def _project(module: str) -> str:
    """A module's name in the source tree: installed, the folders are hubscan.pipeline, hubscan.jobs, ..."""
    return module.removeprefix("hubscan.")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(_project(node.module))
        elif isinstance(node, ast.Import):
            found.update(_project(alias.name) for alias in node.names)
    return found


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "pipeline" and parts[1] in STAGES else None


def test_no_stage_imports_a_later_stage():
    violations = []
    for stage in STAGES:
        for path in (PIPELINE / stage).rglob("*.py"):
            for module in _imports(path):
                target = _stage(module)
                if target and STAGES.index(target) > STAGES.index(stage):
                    violations.append(f"{path.relative_to(ROOT)} imports {module}")
    assert violations == []


def test_every_folder_imports_only_the_folders_below_it():
    violations = []
    for folder, allowed in ALLOWED.items():
        for path in (ROOT / folder).rglob("*.py"):
            for module in _imports(path):
                top = module.split(".")[0]
                if top not in PROJECT or top in allowed:
                    continue
                if top == "testbed" and path in TESTBED_USERS:
                    continue
                violations.append(f"{path.relative_to(ROOT)} imports {module}")
    assert violations == []


def _module_graph(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Each project module of ``folders`` -> the project modules it imports (at any depth of its code)."""
    files = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            files[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                module = _project(node.module)
                targets = [module, *(f"{module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [_project(a.name) for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of the graph (its strongly connected components of two or more modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_in_the_product_or_the_benches():
    # a lazy import inside a function counts: a circle that only runs later is still a circle
    assert _cycles(_module_graph(("pipeline", "jobs", "bench"))) == []


def test_the_circle_check_sees_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_product_never_imports_torch():
    # torch is a test extra that trains the controls (testbed/controls); `hubscan demo` must run without it
    for folder in ("pipeline", "jobs", "testbed/fakehub", "testbed/demohub", "testbed/writers"):
        for path in (ROOT / folder).rglob("*.py"):
            for module in _imports(path):
                assert not module.startswith(NEVER_IN_PRODUCT), f"{path} imports {module}"


def test_the_layering_rules_see_violations(tmp_path):
    # the walk above must recognise both import forms, or every rule passes vacuously
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import hubscan.testbed.fakehub\nfrom hubscan.jobs.flag import run\nfrom . import sibling\n"
    )
    assert _imports(probe) == {"testbed.fakehub", "jobs.flag"}


def _imported(code: str, path: str = str(ROOT)) -> tuple[str, list[str]]:
    """(stdout of ``code`` run in a fresh interpreter, the testbed modules loaded by then)."""
    probe = (
        code
        + "\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if m.startswith('hubscan.testbed'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={"PYTHONPATH": path, "PATH": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    *out, loaded = done.stdout.splitlines()
    return "\n".join(out), loaded.split()


def test_the_product_imported_does_not_import_the_test_bed():
    # the import graph as Python runs it: the command and every command module, imported, load no testbed
    # module (the demo reaches the test bed only when it runs)
    out, loaded = _imported(
        "import importlib, pkgutil, sys, hubscan.jobs, hubscan.jobs.cli\n"
        "for m in pkgutil.iter_modules(hubscan.jobs.__path__): importlib.import_module(f'hubscan.jobs.{m.name}')\n"
        "print(len([m for m in sys.modules if m.startswith('hubscan.jobs.')]))"
    )
    assert int(out) == len(list((ROOT / "jobs").glob("*.py"))) - 1  # every command module (not __init__)
    assert loaded == []


def test_the_test_bed_check_sees_an_import(tmp_path):
    # the check above must fail when a product module imports the test bed at import time
    (tmp_path / "leaky.py").write_text("import hubscan.testbed.fakehub\n")
    assert "hubscan.testbed.fakehub" in _imported("import leaky", f"{tmp_path}:{ROOT}")[1]
