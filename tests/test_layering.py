"""Data flows one way: a pipeline stage imports only from stages before it, and every top-level
folder imports only the folders below it (the product never imports its test helpers)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipeline"
# Stage order; modules at the package root (errors, config, http, roles, model_config) are shared.
STAGES = ["sources", "readers", "fingerprints", "comparison", "storage"]
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
# The one product module that starts the demo hub: `hubscan demo` runs the real path against it.
TESTBED_USERS = {ROOT / "jobs" / "demo.py"}
NEVER_IN_PRODUCT = ("torch", "transformers")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
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


def test_the_product_never_imports_torch():
    # torch is a test extra that trains the controls (testbed/controls); `hubscan demo` must run without it
    for folder in ("pipeline", "jobs", "testbed/fakehub", "testbed/demohub", "testbed/writers"):
        for path in (ROOT / folder).rglob("*.py"):
            for module in _imports(path):
                assert not module.startswith(NEVER_IN_PRODUCT), f"{path} imports {module}"


def test_the_layering_rules_see_violations(tmp_path):
    # the walk above must recognise both import forms, or every rule passes vacuously
    probe = tmp_path / "probe.py"
    probe.write_text("import testbed.fakehub\nfrom jobs.flag import run\nfrom . import sibling\n")
    assert _imports(probe) == {"testbed.fakehub", "jobs.flag"}
