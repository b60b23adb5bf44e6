"""Declared lineage from base_model cards."""

from __future__ import annotations

from hubscan.pipeline.comparison.lineage import ancestors, declared

BASES = {
    "org/ft": ["org/base"],
    "org/quant": ["org/ft"],
    "org/sibling": ["org/base"],
    "org/loop-a": ["org/loop-b"],
    "org/loop-b": ["org/loop-a"],
}


def test_direct_and_transitive_declarations():
    assert declared("org/ft", "org/base", BASES) == (True, "org/ft declares org/base")
    assert declared("org/base", "org/quant", BASES)[0]
    assert ancestors("org/quant", BASES) == {"org/ft", "org/base"}


def test_a_shared_declared_ancestor_counts():
    assert declared("org/sibling", "org/quant", BASES) == (True, "shared declared ancestor org/base")


def test_undeclared_and_cycles():
    assert declared("org/ft", "org/other", BASES) == (False, "")
    assert ancestors("org/loop-a", BASES) == {"org/loop-b"}
