"""The licence terms table, card licence normalisation, parent inference and edge findings (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hubscan.pipeline.comparison import licences as lic
from hubscan.pipeline.comparison.licence_terms import LICENCES, NON_COMMERCIAL, RESTRICTIONS, USE_POLICY
from hubscan.pipeline.comparison.parentage import NEITHER, infer_parent

HUB_TAGS = ("apache-2.0", "mit", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "gemma", "cc-by-4.0",
            "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "openrail", "creativeml-openrail-m",
            "bigscience-openrail-m", "qwen")  # fmt: skip


@pytest.mark.parametrize("tag", HUB_TAGS)
def test_every_hub_tag_has_terms_each_naming_its_source(tag):
    licence = LICENCES[tag]
    assert licence.url.startswith("https://")
    for term in licence.terms:
        assert term.source.startswith("https://") and term.detail, (tag, term)


def test_the_table_states_the_restrictions_that_tell_licences_apart():
    assert (
        NON_COMMERCIAL in LICENCES["cc-by-nc-4.0"].kinds()
        and NON_COMMERCIAL not in LICENCES["cc-by-4.0"].kinds()
    )
    assert "share-alike" in LICENCES["cc-by-nc-sa-4.0"].kinds()
    assert LICENCES["llama3"].name_prefix == "Llama 3" and LICENCES["llama3.1"].name_prefix == "Llama"
    assert USE_POLICY in LICENCES["gemma"].kinds() and USE_POLICY in LICENCES["creativeml-openrail-m"].kinds()
    assert not set(LICENCES["apache-2.0"].kinds()) & set(RESTRICTIONS)  # notices only


@pytest.mark.parametrize(
    ("license", "name", "want"),
    [
        ("Apache-2.0", None, "apache-2.0"),
        ("apache 2.0", None, "apache-2.0"),
        ("llama-3.1", None, "llama3.1"),
        ("other", "qwen", "qwen"),
        ("other", "Tongyi Qianwen", "tongyi-qianwen"),
        ("other", "acme-research", "other:acme-research"),
        ("other", None, "other"),
        ("gpl-3.0", None, "gpl-3.0"),
        ("", None, None),
        (None, None, None),
    ],
)
def test_card_licences_normalise_to_hub_tags(license, name, want):
    assert lic.normalise(license, name) == want


def test_a_derivative_relicensed_without_the_parents_non_commercial_term_is_relicensed():
    f = lic.parent_child_finding("org/base", "cc-by-nc-4.0", "x/copy", "apache-2.0", declared=True)
    assert f is not None and f.kind == lic.RELICENSED
    assert "cc-by-nc-4.0" in f.reason and "apache-2.0" in f.reason and "non-commercial" in f.reason
    assert "by-nc/4.0/legalcode s.2(a)(1)" in f.reason  # the clause the term comes from


def test_adding_a_restriction_or_keeping_the_licence_is_compatible():
    assert lic.parent_child_finding("org/base", "apache-2.0", "x/nc", "cc-by-nc-4.0", declared=False) is None
    assert lic.parent_child_finding("org/base", "cc-by-nc-4.0", "x/ft", "cc-by-nc-4.0", declared=True) is None
    assert (
        lic.parent_child_finding("org/base", "cc-by-sa-4.0", "x/ft", "cc-by-nc-sa-4.0", declared=True) is None
    )
    dropped = lic.parent_child_finding("org/base", "cc-by-nc-sa-4.0", "x/ft", "cc-by-nc-4.0", declared=True)
    assert dropped is not None and dropped.kind == lic.RELICENSED and "share-alike" in dropped.reason


def test_llama3_derivatives_owe_the_name_prefix_and_undeclared_ones_the_credit():
    named = lic.parent_child_finding(
        "meta/Meta-Llama-3-8B", "llama3", "x/Llama-3-8B-chat", "llama3", declared=True
    )
    assert named is None
    f = lic.parent_child_finding(
        "meta/Meta-Llama-3-8B", "llama3", "x/super-chat-8b", "llama3", declared=False
    )
    assert f is not None and f.kind == lic.ATTRIBUTION_MISSING
    assert (
        'lacks "Llama 3"' in f.reason
        and "Built with Meta Llama 3" in f.reason
        and "no card declares" in f.reason
    )
    # Llama 3.1 asks only for "Llama" in the name
    assert (
        lic.parent_child_finding("meta/Llama-3.1-8B", "llama3.1", "x/TinyLlama-ft", "llama3.1", True) is None
    )


def test_unknown_licences_are_said_so():
    f = lic.edge_finding("a/x", "apache-2.0", "b/y", None, "a", declared=False)
    assert f == lic.LicenceFinding(lic.LICENCE_UNKNOWN, "b/y states no licence")
    g = lic.edge_finding("a/x", "other:acme", "b/y", "mit", "a", declared=False)
    assert g is not None and g.kind == lic.LICENCE_UNKNOWN and "other:acme are not in" in g.reason


def test_an_unknown_parent_tries_both_directions_and_says_so():
    f = lic.edge_finding("a/base", "cc-by-nc-4.0", "b/copy", "apache-2.0", None, declared=False)
    assert f is not None and f.kind == lic.RELICENSED
    assert (
        f.reason.startswith("parent unknown; if a/base is the parent:")
        and "b/copy is the parent" not in f.reason
    )
    assert lic.edge_finding("a/x", "cc-by-nc-4.0", "b/y", "apache-2.0", NEITHER, declared=True) is None


def test_finding_text_reads_a_pairs_row():
    row = {"flagged": True, "a_repo_id": "a/x", "b_repo_id": "b/y", "a_license": "cc-by-nc-4.0", "b_license": "apache-2.0",
           "parent": "a", "parent_how": "b/y declares a/x as its base", "license_finding": "relicensed",
           "license_reason": "b/y is apache-2.0 ..."}  # fmt: skip
    text = lic.finding_text(row)
    assert text.startswith("licences a/x: cc-by-nc-4.0, b/y: apache-2.0; parent a/x (b/y declares")
    assert text.endswith("relicensed: b/y is apache-2.0 ...")
    unknown = lic.finding_text({**row, "license_finding": None, "parent": None, "parent_how": None})
    assert unknown.endswith("parent unknown; no licence finding")
    assert lic.finding_text({**row, "flagged": False}).endswith("not flagged, so no lineage edge to judge")


T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 3, 1, tzinfo=UTC)


def test_parent_from_declaration_then_structure_then_creation_time():
    bases = {"c/child": ["p/parent"], "s/sib": ["p/parent"], "p/parent": ["a/root"]}
    assert infer_parent("c/child", "p/parent", bases)[0] == "b"
    assert infer_parent("p/parent", "c/child", bases, "pruned", "a")[0] == "a"  # the card wins
    assert infer_parent("c/child", "s/sib", bases) == (NEITHER, "siblings: both declare p/parent")
    assert infer_parent("x/a", "y/b", {}, "pruned", "a") == ("b", "x/a is pruned (layer / expert map)")
    assert infer_parent("x/a", "y/b", {}, "re-ordered", "a")[0] is None  # no direction in a re-order
    assert infer_parent("x/a", "y/b", {}, created=(T1, T0))[0] == "b"
    assert infer_parent("x/a", "y/b", {}, created=(T0, T0.replace(hour=5)))[0] is None  # same day: no order
