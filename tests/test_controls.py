"""Trained controls: independent same-architecture models and real fine-tunes, through `hubscan flag`.

The controls are trained here (testbed/controls, torch on CPU, cached once); nothing else in the test
suite is really trained. Independent controls share architecture, vocabulary and, for two of them,
every training batch: only the init seed differs. The fine-tunes continue one control on other text.
Expectations come from the build (which run continues which) and from exact weight drift measured
on the files, never from hubscan's own output.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (test extra) trains the controls")

from hubscan.jobs import fingerprint  # noqa: E402
from hubscan.pipeline.comparison import verdicts as v  # noqa: E402
from hubscan.pipeline.config import Settings  # noqa: E402
from hubscan.pipeline.flagging import engine as flag  # noqa: E402
from hubscan.pipeline.roles import classify  # noqa: E402
from hubscan.pipeline.sources.tokenizer import tokens_from_tokenizer_json  # noqa: E402
from hubscan.testbed.controls import corpus  # noqa: E402
from hubscan.testbed.controls.model import BertMLM  # noqa: E402
from hubscan.testbed.controls.stats import init_dim_std_cv, trained_stats, weight_drift  # noqa: E402
from hubscan.testbed.controls.train import (  # noqa: E402
    INDEPENDENT,
    ORG,
    RUNS,
    RUNS_BY_ID,
    SHAPE,
    SIBLINGS,
    Run,
    _texts,
    build_controls,
    configure_torch,
    heldout_loss,
    load_state,
    relation,
    train,
)
from hubscan.testbed.demohub.realmodels import build_repo_e5_small, build_repo_minilm_l6  # noqa: E402
from tests.real_checkpoints import real_model  # noqa: E402
from tests.stores import pair_row  # noqa: E402

MINILM, E5 = "sentence-transformers/all-MiniLM-L6-v2", "intfloat/multilingual-e5-small"
# ln(4096) = 8.32 is the loss of a uniform guess; a trained control must gain at least this much.
MIN_LOSS_DROP = 1.5


@pytest.fixture(scope="session")
def controls():
    """The built controls folder (trained on first use: ~90 s of CPU); torch set up as the build was."""
    configure_torch()
    return build_controls()


@pytest.fixture(scope="module")
def manifest(controls) -> dict:
    return json.loads((controls / "manifest.json").read_text())


@pytest.fixture(scope="module")
def texts():
    return _texts()


@pytest.fixture(scope="module")
def result(controls, tmp_path_factory):
    """One store of every control plus two real same-family BERTs of another width, flagged."""
    tmp = tmp_path_factory.mktemp("controls")
    build_repo_minilm_l6(real_model("minilm-l6"), tmp / MINILM)
    build_repo_e5_small(real_model("e5-small"), tmp / E5)
    repos = [controls / ORG / r.name for r in RUNS] + [tmp / MINILM, tmp / E5]
    settings = Settings(store=tmp / "store")
    summary = fingerprint.run(settings, [str(p) for p in repos])
    assert summary.failed == 0, summary.messages
    return flag.run(settings)


def _rows(result, kind: str) -> list[dict]:
    return [r for r in result.rows if (relation(r["a_repo_id"], r["b_repo_id"]) or "").startswith(kind)]


def _model(controls, run: Run) -> BertMLM:
    model = BertMLM(SHAPE)
    state = load_state(controls / ORG / run.name / "model.safetensors")
    model.load_state_dict({k: torch.from_numpy(a) for k, a in state.items()}, strict=True)
    return model.eval()


def test_hubscan_reads_the_controls_as_bert_with_their_vocabulary(controls):
    repo = controls / ORG / RUNS[0].name
    names = load_state(repo / "model.safetensors")
    roles = {n: classify(n) for n in names}
    encoder = [n for n in names if n.startswith("bert.")]
    assert [n for n in encoder if roles[n].role == "other"] == []  # every BERT tensor has its role
    expected = {"embed", "embed_norm", "attn_q", "attn_k", "attn_v", "attn_o", "mlp_up", "mlp_down"}
    assert {roles[n].role for n in encoder} >= expected
    vocab = (repo / "vocab.txt").read_text().splitlines()
    assert tokens_from_tokenizer_json((repo / "tokenizer.json").read_bytes()) == vocab
    assert len(vocab) == SHAPE.vocab and vocab[: len(corpus.SPECIALS)] == list(corpus.SPECIALS)


def test_every_control_trained_well_below_its_init_loss(controls, manifest, texts):
    _, split = texts
    for run in RUNS:
        held = torch.cat([split[t][1] for t in run.texts])
        torch.manual_seed(1)
        fresh = heldout_loss(BertMLM(SHAPE), held)
        trained = heldout_loss(_model(controls, run), held)
        assert trained < fresh - MIN_LOSS_DROP, (run.name, fresh, trained)
        # the manifest's figure is what the saved weights give (same fixed held-out batches)
        assert trained == pytest.approx(manifest["runs"][run.name]["heldout_after"], abs=1e-4), run.name
        if run.base is not None:  # a fine-tune learnt its new text beyond what its base knew of it
            base = heldout_loss(_model(controls, RUNS_BY_ID[f"{ORG}/{run.base}"]), held)
            assert trained < base - 0.2, (run.name, base, trained)


def test_statistics_of_the_controls_are_not_those_of_random_init(controls):
    torch.manual_seed(1)
    init = trained_stats({k: v.numpy() for k, v in BertMLM(SHAPE).state_dict().items()})
    assert init["embed_gain_sd"] == 0.0 and init["gain_abs_dev_mean"] == 0.0  # gains start at exactly 1
    assert init["embed_dim_std_cv"] < 1.5 * init_dim_std_cv(SHAPE.vocab)
    for run in RUNS:
        got = trained_stats(load_state(controls / ORG / run.name / "model.safetensors"))
        assert got["embed_gain_sd"] > 1e-3 and got["gain_abs_dev_mean"] > 1e-3, run.name
        assert got["embed_dim_std_cv"] > 3 * init["embed_dim_std_cv"], (run.name, got)


def test_training_is_deterministic(controls):
    ids = torch.arange(5000) % (SHAPE.vocab - len(corpus.SPECIALS)) + len(corpus.SPECIALS)
    states = []
    for _ in range(2):
        torch.manual_seed(7)
        model = BertMLM(SHAPE)
        train(model, ids, Run("det", ("x",), data_seed=9, steps=3, lr=1e-3, init_seed=7))
        states.append(model.hf_state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_no_pair_of_independent_controls_is_flagged(result):
    independent = _rows(result, INDEPENDENT)
    assert len(independent) == 12  # 4 seeds pairwise, and each fine-tune with the 3 other seeds
    for row in independent:
        assert not row["flagged"] and row["q"] > 0.01, (row["a_repo_id"], row["b_repo_id"])
        assert row["verdict"] == v.UNRELATED
        assert row["background_pairs"] > 0  # calibrated on its own block, not on the prior alone


def test_real_fine_tunes_get_the_verdict_their_exact_drift_implies(controls, result):
    base_run = RUNS_BY_ID[f"{ORG}/ctl-a-seed1"]
    base = load_state(controls / ORG / base_run.name / "model.safetensors")
    for run in (r for r in RUNS if r.base):
        row = pair_row(result.rows, base_run.repo_id, run.repo_id)
        drift = weight_drift(base, load_state(controls / ORG / run.name / "model.safetensors"))
        moved = drift["matrix_r_median"] >= v.THRESHOLDS["fine_tune_min"].value
        assert row["flagged"] and row["q"] <= 0.01, run.name
        assert row["verdict"] == (v.FINE_TUNE if moved else v.SAME_LINEAGE), (run.name, row["reason"], drift)
        # the sampled sketch measures the drift the whole matrices have
        assert row["sketch"] == pytest.approx(drift["matrix_r_median"], abs=0.01), run.name
        assert 1 - drift["matrix_r_median"] > v.cast_band(row["a_dtype"]), run.name  # moved beyond a cast


def test_declared_follows_the_cards_of_the_fine_tunes(result):
    light = pair_row(result.rows, f"{ORG}/ctl-a-seed1", f"{ORG}/ctl-a-ft-light")
    heavy = pair_row(result.rows, f"{ORG}/ctl-a-seed1", f"{ORG}/ctl-a-ft-heavy")
    assert light["declared"] is True and heavy["declared"] is False
    (siblings,) = _rows(result, SIBLINGS)
    assert siblings["flagged"] and siblings["declared"] is False  # only one of them names the base


def test_the_std_profile_alone_ranks_an_independent_pair_above_a_real_fine_tune(result):
    # the seed's statistic encodes the architecture: reported, never decisive
    independent = [r["std_profile"] for r in _rows(result, INDEPENDENT)]
    tuned = [r["std_profile"] for r in _rows(result, "fine-tune")]
    assert max(independent) > min(tuned)
    assert not any(r["flagged"] for r in _rows(result, INDEPENDENT))


def test_controls_and_the_wider_real_berts_stay_apart(result):
    controls = {r.repo_id for r in RUNS}
    for row in result.rows:
        pair = {row["a_repo_id"], row["b_repo_id"]}
        assert not (pair & controls and pair - controls)  # other hidden size: never a candidate pair
    assert not pair_row(result.rows, MINILM, E5)["flagged"]


def test_every_pair_of_controls_is_scored(result):
    ids = sorted(r.repo_id for r in RUNS)
    scored = {frozenset((r["a_repo_id"], r["b_repo_id"])) for r in result.rows}
    assert all(frozenset(p) in scored for p in itertools.combinations(ids, 2))
    assert np.isfinite([r["sketch"] for r in result.rows if r["a_repo_id"] in ids]).all()
