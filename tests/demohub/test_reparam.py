"""The re-parameterised variants compute the same function as the real checkpoint (numpy forward)."""

from __future__ import annotations

import numpy as np
import pytest

from hubscan.testbed.demohub import reparam
from hubscan.testbed.writers.safetensors_write import read_safetensors_np
from tests.real_checkpoints import real_model

HEADS = 12  # all-MiniLM-L6-v2
TOKENS = np.array([101, 2023, 2003, 1037, 3231, 6251, 2055, 17953, 1012, 102])


@pytest.fixture(scope="module")
def minilm() -> dict[str, np.ndarray]:
    return read_safetensors_np(next(real_model("minilm-l6").rglob("model.safetensors")))


@pytest.mark.parametrize(("permute", "rescale"), [(True, False), (False, True), (True, True)])
def test_reparameterised_weights_compute_the_same_function(minilm, permute, rescale):
    r = reparam.draw(minilm, HEADS, seed=5, permute=permute, rescale=rescale)
    new = reparam.apply(minilm, r)
    hidden, pooled = reparam.bert_forward(minilm, TOKENS, HEADS)
    hidden2, pooled2 = reparam.bert_forward(new, TOKENS, HEADS)
    # the last hidden state comes out permuted by P; the pooler output is unchanged
    np.testing.assert_allclose(hidden2, hidden[:, r.hidden], atol=1e-6)
    np.testing.assert_allclose(pooled2, pooled, atol=1e-6)
    changed = [n for n in minilm if minilm[n].dtype.kind == "f" and not np.array_equal(minilm[n], new[n])]
    assert len(changed) >= 6 * (12 if permute else 6)  # a no-op would pass the forward check too


def test_a_wrong_head_order_breaks_the_function(minilm):
    """The forward check can fail: Q/K and V/O with different head orders change the output."""
    r = reparam.draw(minilm, HEADS, seed=5, permute=True, rescale=False)
    broken = reparam.Reparam(r.hidden, r.neurons, r.qk, {i: v[::-1].copy() for i, v in r.vo.items()},
                             r.qk_scale, r.vo_scale)  # fmt: skip
    hidden, _ = reparam.bert_forward(minilm, TOKENS, HEADS)
    hidden2, _ = reparam.bert_forward(reparam.apply(minilm, broken), TOKENS, HEADS)
    assert np.abs(hidden2 - hidden[:, r.hidden]).max() > 1e-2


def test_rescaling_bends_the_per_layer_std_of_q_k_v_o(minilm):
    r = reparam.draw(minilm, HEADS, seed=2, permute=False, rescale=True)
    new = reparam.apply(minilm, r)
    for i in range(6):
        q = f"encoder.layer.{i}.attention.self.query.weight"
        assert new[q].std() / minilm[q].std() == pytest.approx(r.qk_scale[i], rel=1e-5)
    assert len({round(c, 3) for c in r.qk_scale.values()}) == 6
