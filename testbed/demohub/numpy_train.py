"""Train small convolutional nets in plain numpy: independently trained models of one layout.

The testbed needs negatives that are hard for a roles-free comparison: models of exactly the same
tensor layout, trained (not just initialised) on the same task from other seeds, as two people
training one published architecture would. torch is not a dependency of jobs/, so the few layers
these nets use (convolution by im2col, one GRU step from a zero state, a linear head, Adam) are
written out here. A run takes about a second and is deterministic for its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Adam's usual constants; the rate is high because runs are a few hundred steps long.
LEARNING_RATE = 3e-3
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
BATCH = 16


@dataclass(frozen=True)
class ConvNet:
    """Layout: ``convs`` as (in, out, kernel height, kernel width), an optional GRU cell, a linear head.

    ``one_d`` stores kernels as Conv1d does, (out, in, width), instead of (out, in, height, width).
    """

    convs: tuple[tuple[int, int, int, int], ...]
    gru: int | None
    classes: int
    one_d: bool
    prefix: str = "encoder"


def init_params(net: ConvNet, seed: int) -> dict[str, np.ndarray]:
    """torch's default initialisation: U(±1/sqrt(fan_in)) for weights and biases (GRU: 1/sqrt(hidden))."""
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for i, (cin, cout, kh, kw) in enumerate(net.convs):
        bound = 1.0 / np.sqrt(cin * kh * kw)
        params[f"{net.prefix}.{i}.weight"] = rng.uniform(-bound, bound, (cout, cin, kh, kw))
        params[f"{net.prefix}.{i}.bias"] = rng.uniform(-bound, bound, cout)
    width = net.convs[-1][1]
    if net.gru:
        bound = 1.0 / np.sqrt(net.gru)
        params["rnn.weight_ih_l0"] = rng.uniform(-bound, bound, (3 * net.gru, width))
        params["rnn.weight_hh_l0"] = rng.uniform(-bound, bound, (3 * net.gru, net.gru))
        params["rnn.bias_ih_l0"] = rng.uniform(-bound, bound, 3 * net.gru)
        params["rnn.bias_hh_l0"] = rng.uniform(-bound, bound, 3 * net.gru)
        width = net.gru
    bound = 1.0 / np.sqrt(width)
    params["head.weight"] = rng.uniform(-bound, bound, (net.classes, width))
    params["head.bias"] = rng.uniform(-bound, bound, net.classes)
    return params


def train(
    net: ConvNet, x: np.ndarray, y: np.ndarray, seed: int, steps: int
) -> tuple[dict[str, np.ndarray], float, float]:
    """(float32 tensors as the checkpoint stores them, first loss, last loss): Adam on sigmoid BCE."""
    params = init_params(net, seed)
    rng = np.random.default_rng(seed + 1_000_003)
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    losses = []
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(x), BATCH)
        loss, grads = _loss_and_grads(net, params, x[idx], y[idx])
        losses.append(loss)
        for k, g in grads.items():
            m, v = moments[k]
            m[:] = BETAS[0] * m + (1 - BETAS[0]) * g
            v[:] = BETAS[1] * v + (1 - BETAS[1]) * g * g
            m_hat, v_hat = m / (1 - BETAS[0] ** step), v / (1 - BETAS[1] ** step)
            params[k] -= LEARNING_RATE * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
    out = {}
    for k, v in params.items():
        out[k] = (v[:, :, 0, :] if net.one_d and v.ndim == 4 else v).astype(np.float32)
    return out, float(np.mean(losses[:10])), float(np.mean(losses[-10:]))


def _im2col(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """(N, C, H, W) -> (N*H*W, C*kh*kw) patches, 'same' zero padding, stride 1."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    cols = np.empty((n, c, kh, kw, h, w))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i : i + h, j : j + w]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * h * w, c * kh * kw)


def _col2im(cols: np.ndarray, shape: tuple[int, ...], kh: int, kw: int) -> np.ndarray:
    """The gradient of _im2col: patches summed back onto the input."""
    n, c, h, w = shape
    d = cols.reshape(n, h, w, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    xp = np.zeros((n, c, h + 2 * (kh // 2), w + 2 * (kw // 2)))
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i : i + h, j : j + w] += d[:, :, i, j]
    return xp[:, :, kh // 2 : kh // 2 + h, kw // 2 : kw // 2 + w]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _loss_and_grads(
    net: ConvNet, p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[float, dict[str, np.ndarray]]:
    """Forward and backward pass of one batch."""
    grads: dict[str, np.ndarray] = {}
    saved = []
    a = x
    for i, (_, cout, kh, kw) in enumerate(net.convs):
        w = p[f"{net.prefix}.{i}.weight"]
        cols = _im2col(a, kh, kw)
        z = cols @ w.reshape(cout, -1).T + p[f"{net.prefix}.{i}.bias"]
        n, _, h, wd = a.shape
        out = np.maximum(z, 0.0).reshape(n, h, wd, cout).transpose(0, 3, 1, 2)
        saved.append((a.shape, cols, z))
        a = out
    feat = a.mean(axis=(2, 3))
    if net.gru:
        g, feat_in = net.gru, feat
        gi = feat_in @ p["rnn.weight_ih_l0"].T + p["rnn.bias_ih_l0"]
        gh = p["rnn.bias_hh_l0"]  # one step from h0 = 0: weight_hh multiplies zeros
        r = _sigmoid(gi[:, :g] + gh[:g])
        u = _sigmoid(gi[:, g : 2 * g] + gh[g : 2 * g])
        cand = np.tanh(gi[:, 2 * g :] + r * gh[2 * g :])
        feat = (1 - u) * cand
    logits = feat @ p["head.weight"].T + p["head.bias"]
    prob = _sigmoid(logits)
    loss = -np.mean(y * np.log(prob + 1e-12) + (1 - y) * np.log(1 - prob + 1e-12))
    dlog = (prob - y) / y.size
    grads["head.weight"], grads["head.bias"] = dlog.T @ feat, dlog.sum(0)
    dfeat = dlog @ p["head.weight"]
    if net.gru:
        dcand = dfeat * (1 - u)
        du = -dfeat * cand
        dn = dcand * (1 - cand**2)
        dr = dn * gh[2 * g :]
        dgi = np.concatenate([dr * r * (1 - r), du * u * (1 - u), dn], axis=1)
        dgh = np.concatenate([dgi[:, : 2 * g], dn * r], axis=1)
        grads["rnn.weight_ih_l0"], grads["rnn.bias_ih_l0"] = dgi.T @ feat_in, dgi.sum(0)
        grads["rnn.bias_hh_l0"] = dgh.sum(0)
        grads["rnn.weight_hh_l0"] = np.zeros_like(p["rnn.weight_hh_l0"])
        dfeat = dgi @ p["rnn.weight_ih_l0"]
    h, wd = a.shape[2:]
    da = np.broadcast_to(dfeat[:, :, None, None] / (h * wd), a.shape)
    for i in reversed(range(len(net.convs))):
        _, cout, kh, kw = net.convs[i]
        shape, cols, z = saved[i]
        dz = (da.transpose(0, 2, 3, 1).reshape(-1, cout)) * (z > 0)
        w = p[f"{net.prefix}.{i}.weight"]
        grads[f"{net.prefix}.{i}.weight"] = (dz.T @ cols).reshape(w.shape)
        grads[f"{net.prefix}.{i}.bias"] = dz.sum(0)
        if i:
            da = _col2im(dz @ w.reshape(cout, -1), shape, kh, kw)
    return float(loss), grads
