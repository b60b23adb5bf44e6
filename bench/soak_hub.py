"""The soak's hub: thousands of small distinct models, a few percent hostile or scripted to misbehave.

Hostile repos are files on disk (the demo hub's bad-repo writers plus a deeply nested header);
transient faults are the fake Hub's scripts, keyed to one repo each so every fault is hit once.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

from hubscan.testbed.demohub.badrepos import tiny_tensors, write_bad_repo
from hubscan.testbed.fakehub import FakeHub
from hubscan.testbed.fakehub.faults import Fault
from hubscan.testbed.writers.safetensors_write import write_safetensors

SOAK_ORG = "soak"
# Every bad-repo kind a stranger can upload, plus the crash (nested header JSON).
HOSTILE_KINDS = (
    "truncated",
    "header-too-large",
    "overlapping-offsets",
    "offsets-past-end",
    "unknown-dtype",
    "nan-inf",
    "malformed-json",
    "empty",
    "pickle-only",
    "malicious-pickle",
    "torch-truncated",
    "torch-compressed",
    "torch-legacy",
    "torch-offset-past-end",
    "gated",
    "nested-json",
)
# Deeper than CPython's recursion limit: json.loads alone would raise RecursionError.
NESTED_DEPTH = 100_000
# Scripted faults per repo. A storm of 3 × 429 (Retry-After 1 s) and three 5xx are outlasted
# by the client's 5 retries; 8 in a row are not, and must end as a transient failures row.
TRANSIENT_SCRIPTS: dict[str, tuple[list[Fault | int | str], str]] = {
    "429-storm": ([429, 429, 429], "hub"),
    "429-storm-outlasting": ([429] * 8, "hub"),
    "5xx": ([503, 500, 502], "cdn"),
    "5xx-outlasting": ([503] * 8, "cdn"),
    "cut-body": (["cut", "cut"], "cdn"),
}
# Half the fault budget is hostile files, half scripted transport faults.
HOSTILE_SHARE = 0.5


@dataclass
class SoakHub:
    """What was planted where: repo id → hostile kind or transient script name."""

    root: Path
    hostile: dict[str, str] = field(default_factory=dict)
    transient: dict[str, str] = field(default_factory=dict)
    good: int = 0


def build_hub(root: Path, models: int, fault_rate: float, seed: int) -> SoakHub:
    """Write ``models`` repos under ``root``; about ``fault_rate`` of them hostile or faulted."""
    rng = random.Random(seed)
    hub = SoakHub(root)
    hostile_cycle = 0
    transient_names = list(TRANSIENT_SCRIPTS)
    for i in range(models):
        repo_id = f"{SOAK_ORG}/m-{i:05d}"
        dst = root / repo_id
        roll = rng.random()
        if roll < fault_rate * HOSTILE_SHARE:
            kind = HOSTILE_KINDS[hostile_cycle % len(HOSTILE_KINDS)]
            hostile_cycle += 1
            _write_hostile(dst, kind)
            hub.hostile[repo_id] = kind
            continue
        # Distinct weights per repo: every model is really read, none is a copy of another.
        write_safetensors(dst / "model.safetensors", tiny_tensors(seed * 1_000_003 + i))
        hub.good += 1
        if roll < fault_rate:
            hub.transient[repo_id] = transient_names[len(hub.transient) % len(transient_names)]
    return hub


def _write_hostile(dst: Path, kind: str) -> None:
    if kind != "nested-json":
        write_bad_repo(dst, kind)
        return
    body = b'{"__metadata__":' + b"[" * NESTED_DEPTH + b"]" * NESTED_DEPTH + b"}"
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "model.safetensors").write_bytes(struct.pack("<Q", len(body)) + body)


def script_faults(fake: FakeHub, hub: SoakHub) -> None:
    """Queue each faulted repo's script on its weight file, plus a 429 and a 503 on the listing."""
    for repo_id, name in hub.transient.items():
        steps, origin = TRANSIENT_SCRIPTS[name]
        fake.script("model.safetensors", steps, repo_id=repo_id, origin=origin)
    fake.script("/api/models", [429, 503], method="GET")
