"""`hubscan demo`: a real sweep of the demo hub on Ray, then the flagged pairs printed (issue 4)."""

from jobs import demo
from pipeline.config import Settings

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _line(lines: list[str], repo: str) -> str:
    found = [line for line in lines if f"─ {repo}  " in line]
    assert len(found) == 1, f"{repo}: {found}"
    return found[0]


def test_the_demo_sweeps_then_prints_the_families_of_flagged_models(ray_session, testbed, tmp_path, capsys):
    summary = demo.run(Settings(store=tmp_path / "store"), workdir=testbed)
    out, err = capsys.readouterr()
    assert summary.failed == 0, summary.messages
    lines = out.splitlines()
    # a tree per family, MiniLM's first, not one line per pair
    assert lines[0].startswith("family 1: ") and f"root {MINILM}" in lines[0] and lines[1].startswith(MINILM)
    assert sum(line.startswith("family ") for line in lines) >= 2
    # the byte-identical re-upload: an exact copy no model card declares, right under MiniLM
    reupload = _line(lines, "demohub/minilm-reupload")
    assert reupload.startswith(("├─ ", "└─ ")) and "exact copy" in reupload and "[UNDECLARED]" in reupload
    bf16 = _line(lines, "demohub/all-MiniLM-L6-v2-bf16")
    assert "cast/quantised copy" in bf16 and "UNDECLARED" not in bf16
    assert "same lineage" in _line(lines, "sentence-transformers/paraphrase-MiniLM-L3-v2")
    assert "flagged (" in err and "hubscan compare" in err and "hubscan export" in err
    assert "hubscan sql" in err
