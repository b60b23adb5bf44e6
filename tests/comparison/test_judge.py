"""The verdict decided once: a scored row's signals and its layer/expert map together, and its licence edge."""

from __future__ import annotations

from hubscan.pipeline.comparison import verdicts as v
from hubscan.pipeline.comparison.candidates import CandidatePair
from hubscan.pipeline.comparison.judge import ModelLicence, judge_pairs
from hubscan.pipeline.comparison.structure import PairStructure
from hubscan.pipeline.comparison.working_row import WorkingRow

A, B = ("org/a", "r1"), ("org/b", "r2")
KEY = (*A, *B)


def _row(flagged: bool) -> WorkingRow:
    """A scored row of an element-aligned copy (bit-identical same-index matrices)."""
    return WorkingRow(
        CandidatePair(*KEY, hidden=64, via="exhaustive"), a_layers=6, b_layers=6, sketch=1.0, sketch_same=1.0,
        sketch_identical=1.0, signals=3, flagged=flagged, declared=False,
    )  # fmt: skip


def test_a_flagged_pairs_map_decides_its_verdict_and_an_unflagged_pairs_does_not():
    pruned = {KEY: PairStructure("pruned", "pruned: b keeps layers 0-3 of a")}
    (copy,) = judge_pairs([_row(True)])
    (mapped,) = judge_pairs([_row(True)], pruned)
    (quiet,) = judge_pairs([_row(False)], pruned)
    assert (copy.verdict, copy.structure) == (v.EXACT_COPY, None)
    assert (mapped.verdict, mapped.reason, mapped.structure) == (
        v.STRUCTURAL, "pruned: b keeps layers 0-3 of a", "pruned",
    )  # fmt: skip
    assert quiet.verdict == v.UNRELATED and quiet.structure == "pruned"


def test_a_structure_that_is_no_derivation_keeps_the_signals_verdict():
    (row,) = judge_pairs([_row(True)], {KEY: PairStructure(None, "no shared layer shapes")})
    assert row.verdict == v.EXACT_COPY and row.structure is None


def test_licences_are_set_on_every_pair_and_the_finding_on_flagged_ones_only():
    licences = {
        A: ModelLicence("llama3", None, ()),
        B: ModelLicence("apache-2.0", None, (A[0],)),
    }
    flagged, quiet = judge_pairs([_row(True), _row(False)], licences=licences)
    assert (flagged.a_license, flagged.b_license) == ("llama3", "apache-2.0")
    assert (quiet.a_license, quiet.b_license) == ("llama3", "apache-2.0")
    assert flagged.parent == "a" and flagged.license_finding is not None
    assert quiet.parent is None and quiet.license_finding is None


def test_judging_consumes_the_rows():
    rows = [_row(True), _row(False)]
    judged = judge_pairs(rows)
    assert rows == [] and [r.flagged for r in judged] == [True, False]
