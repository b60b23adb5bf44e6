"""Data flows one way: a pipeline stage imports only from stages before it."""

import ast
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline"
# Stage order; modules at the package root (errors, config, http, roles, model_config) are shared.
STAGES = ["sources", "readers", "fingerprints", "comparison", "storage"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
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
                    violations.append(f"{path.relative_to(PIPELINE)} imports {module}")
    assert violations == []


def test_pipeline_never_imports_jobs_or_torch():
    for path in PIPELINE.rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith(("jobs", "torch", "transformers")), f"{path} imports {module}"


def test_jobs_never_imports_torch_or_the_bench():
    # torch is a test extra that trains the controls (bench/controls); `hubscan demo` must run without it
    jobs = PIPELINE.parent / "jobs"
    for path in jobs.rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith(("torch", "transformers", "bench")), f"{path} imports {module}"
