"""`hubscan demo`: a real sweep of the demo hub on Ray, then the flagged pairs printed (issue 4)."""

from jobs import demo
from pipeline.config import Settings

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _line(lines: list[str], a: str, b: str) -> str:
    found = [line for line in lines if a in line and b in line]
    assert len(found) == 1, f"{a} / {b}: {found}"
    return found[0]


def test_the_demo_sweeps_then_prints_the_flagged_pairs_undeclared_first(
    ray_session, testbed, tmp_path, capsys
):
    summary = demo.run(Settings(store=tmp_path / "store"), workdir=testbed)
    out, err = capsys.readouterr()
    assert summary.failed == 0, summary.messages
    lines = [line for line in out.splitlines() if "/" in line]
    # the byte-identical re-upload: an exact copy no model card declares
    reupload = _line(lines, MINILM, "demohub/minilm-reupload")
    assert "exact copy" in reupload and "UNDECLARED" in reupload
    assert "declared" in _line(lines, MINILM, "demohub/all-MiniLM-L6-v2-bf16").replace("UNDECLARED", "")
    assert "same lineage" in _line(lines, MINILM, "sentence-transformers/paraphrase-MiniLM-L3-v2")
    # unrelated models are not printed, and every undeclared pair comes before the declared ones
    # (the two-parent stack of MiniLM and e5 layers is related to both, so it is left out here)
    crossing = [line for line in lines if "multilingual-e5-small" in line and "MiniLM" in line]
    assert not [line for line in crossing if "MiniLM-e5-stacked" not in line]
    lineage = ["UNDECLARED" in line for line in lines]
    assert lineage == sorted(lineage, reverse=True) and any(lineage) and not all(lineage)
    assert "flagged (" in err and "hubscan compare" in err and "hubscan export" in err
    assert "hubscan sql" in err
