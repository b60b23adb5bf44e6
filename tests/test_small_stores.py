"""A new user's first stores: `hubscan flag` on two or three models exits 0, whatever the pairs look like."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hubscan.jobs.cli import app
from hubscan.testbed.demohub.small_repos import weights, write_repo

LAYER = re.compile(r"^model\.layers\.(\d+)\.")


def repeated_layer(sign: float) -> dict[str, np.ndarray]:
    """A model whose every layer is layer 0 of seed 0, times ``sign``: with -1, each layer pair is anti-correlated."""
    base = weights(0)
    return {
        name: sign * base[LAYER.sub("model.layers.0.", name)] if LAYER.match(name) and w.ndim == 2 else w
        for name, w in base.items()
    }


def flag_store(tmp_path: Path, repos: dict[str, dict[str, np.ndarray]]) -> tuple[int, str]:
    """Fingerprint the repos with the CLI, then flag them: (flag's exit code, its output)."""
    for repo_id, tensors in repos.items():
        write_repo(tmp_path / "src", repo_id, tensors)
    store = str(tmp_path / "store")
    folders = [str(tmp_path / "src" / r) for r in repos]
    done = CliRunner().invoke(app, ["fingerprint", "--store", store, *folders])
    assert done.exit_code == 0, done.output
    flagged = CliRunner().invoke(app, ["flag", "--store", store])
    return flagged.exit_code, flagged.output


def test_flag_on_two_models_whose_layers_are_anti_correlated_exits_0(tmp_path):
    # every layer map candidate gives r = -1: the chance tail of the best of them is 1, not a crash
    code, output = flag_store(
        tmp_path, {"user/twin": repeated_layer(1.0), "user/anti-twin": repeated_layer(-1.0)}
    )
    assert code == 0, output
    assert "1 pairs scored" in output


@pytest.mark.parametrize("seeds", [(1, 2), (1, 2, 3)])
def test_flag_on_two_or_three_unrelated_models_exits_0_and_flags_none(tmp_path, seeds):
    code, output = flag_store(tmp_path, {f"user/random-{s}": weights(s) for s in seeds})
    assert code == 0, output
    pairs = len(seeds) * (len(seeds) - 1) // 2
    assert f"{pairs} pairs scored, 0 flagged" in output
