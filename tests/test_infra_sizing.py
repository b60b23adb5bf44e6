"""The cluster files' sizing notes quote the constants the code runs with, and their sums hold.

tests/test_infra.py checks the files' structure; this checks the prose people size clusters by:
a note quoting TASK_CPUS = 0.5 while the code reserves 0.25 doubles the cluster for nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubscan.pipeline import config
from hubscan.pipeline.flagging import flag_blocks

INFRA = Path(__file__).resolve().parents[1] / "infra"
SWEEP_NOTE_RE = re.compile(
    r"MAX_IN_FLIGHT = (?P<in_flight>\d+) tasks of TASK_CPUS = (?P<task_cpus>[\d.]+) \(pipeline/config\.py\)"
    r"\s+(?:#\s*)?in flight, so it\s+(?:#\s*)?needs (?P<needs>\d+) worker CPUs"
)
FLAG_NOTE_RE = re.compile(r"flag_blocks\.py TASK_CPUS = (?P<task_cpus>[\d.]+)")
ANY_TASK_CPUS_RE = re.compile(r"TASK_CPUS = [\d.]+")
CLUSTER_FILES = ("ray-cluster.yaml", "k8s/rayjob-sweep.yaml")


def _worker_cpus(doc: dict[str, Any]) -> int:
    """The most worker CPUs a `ray up` config or a RayJob can have at once."""
    if "available_node_types" in doc:
        types = doc["available_node_types"]
        return sum(
            t["max_workers"] * t["resources"]["CPU"] for n, t in types.items() if n != doc["head_node_type"]
        )
    groups = doc["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    cpus = [g["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] for g in groups]
    return sum(g["maxReplicas"] * int(c) for g, c in zip(groups, cpus, strict=True))


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_the_sizing_note_quotes_the_sweeps_constants_and_its_sum(name):
    text = (INFRA / name).read_text()
    (note,) = SWEEP_NOTE_RE.finditer(text)
    assert int(note["in_flight"]) == config.MAX_IN_FLIGHT
    assert float(note["task_cpus"]) == config.TASK_CPUS
    assert int(note["needs"]) == config.MAX_IN_FLIGHT * config.TASK_CPUS
    (doc,) = [d for d in yaml.safe_load_all(text) if d]
    assert _worker_cpus(doc) >= int(note["needs"])


def test_the_flag_tasks_note_quotes_flag_blocks():
    (note,) = FLAG_NOTE_RE.finditer((INFRA / "ray-cluster.yaml").read_text())
    assert float(note["task_cpus"]) == flag_blocks.TASK_CPUS


def test_every_task_cpus_figure_in_infra_is_one_the_notes_check():
    for path in sorted(INFRA.rglob("*")):
        if path.is_file():
            text = path.read_text()
            checked = len(SWEEP_NOTE_RE.findall(text)) + len(FLAG_NOTE_RE.findall(text))
            assert len(ANY_TASK_CPUS_RE.findall(text)) == checked, (
                f"{path}: a TASK_CPUS figure no test checks"
            )
