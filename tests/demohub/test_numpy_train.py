"""The numpy trainer behind the unknown-architecture negatives: right gradients, real training, deterministic."""

import numpy as np
import pytest

from hubscan.testbed.demohub.numpy_train import ConvNet, _loss_and_grads, init_params, train

TINY = ConvNet(((2, 3, 1, 3), (3, 2, 3, 3)), 4, 2, False)


@pytest.mark.parametrize("net", [TINY, ConvNet(((2, 3, 3, 3),), None, 3, False)])
def test_gradients_match_finite_differences(net):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 2, 4, 4)), rng.integers(0, 2, (5, net.classes)).astype(float)
    params = init_params(net, 3)
    _, grads = _loss_and_grads(net, params, x, y)
    eps = 1e-6
    for name, p in params.items():
        for idx in [tuple(rng.integers(0, s) for s in p.shape) for _ in range(3)]:
            old = p[idx]
            p[idx] = old + eps
            up = _loss_and_grads(net, params, x, y)[0]
            p[idx] = old - eps
            down = _loss_and_grads(net, params, x, y)[0]
            p[idx] = old
            assert grads[name][idx] == pytest.approx((up - down) / (2 * eps), rel=1e-3, abs=1e-7), name


def test_training_lowers_the_loss_and_is_deterministic_per_seed():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 2, 4, 4))
    y = (x[:, 0].mean(axis=(1, 2)) > 0).astype(float)[:, None].repeat(2, axis=1)
    a, first, last = train(TINY, x, y, seed=5, steps=400)
    b, _, _ = train(TINY, x, y, seed=5, steps=400)
    c, _, _ = train(TINY, x, y, seed=6, steps=400)
    assert last < 0.8 * first
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.allclose(a["encoder.0.weight"], c["encoder.0.weight"])
    assert a["encoder.0.weight"].shape == (3, 2, 1, 3) and a["encoder.0.weight"].dtype == np.float32
