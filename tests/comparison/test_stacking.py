"""Two partial maps make a stack only when together they explain every layer and each adds some."""

from hubscan.pipeline.comparison.stacking import Piece, find_stacks, pieces_from_pairs

X, A, B, C = ("x", "1"), ("a", "1"), ("b", "1"), ("c", "1")


def _piece(other, layers, offset=0, r=1.0):
    return Piece(other, {x: (x + offset, r) for x in layers})


def test_complementary_pieces_make_a_stack_with_runs():
    pieces = {X: [_piece(A, range(4)), _piece(B, range(4, 8), offset=2)]}
    stacks = find_stacks(pieces, {X: 8, A: 6, B: 12})
    assert set(stacks) == {(X, A), (X, B)}
    assert (
        stacks[(X, A)].summary
        == "stacked from two parents: x.layer 0-3 <- a.layer 0-3; x.layer 4-7 <- b.layer 6-9"
    )
    assert stacks[(X, B)].parents == (A, B)


def test_incomplete_or_nested_pieces_make_no_stack():
    gap = {X: [_piece(A, range(4)), _piece(B, range(5, 8))]}
    nested = {X: [_piece(A, range(8)), _piece(B, range(4, 8))]}
    assert find_stacks(gap, {X: 8}) == {} and find_stacks(nested, {X: 8}) == {}


def test_the_simplest_parent_is_named_among_copies():
    # C explains the same layers as A, out of order (more runs): A is named for the pair with B
    pieces = {X: [_piece(A, range(4)), Piece(C, {0: (1, 1.0), 1: (0, 1.0), 2: (2, 1.0), 3: (3, 1.0)}),
                  _piece(B, range(4, 8))]}  # fmt: skip
    stacks = find_stacks(pieces, {X: 8})
    assert stacks[(X, B)].parents == (A, B) and stacks[(X, C)].parents == (C, B)


def test_pieces_are_seen_from_both_sides():
    got = pieces_from_pairs([(A, X, [(0, 2, 0.9), (1, 3, 0.8)])])
    assert got[X][0].layers == {2: (0, 0.9), 3: (1, 0.8)} and got[A][0].layers == {0: (2, 0.9), 1: (3, 0.8)}
