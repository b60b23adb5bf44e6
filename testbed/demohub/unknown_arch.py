"""Testbed repos of architectures the roles table does not know: a real CNN+GRU and a small 2-D CNN.

Family 1 is the real akiki VAD (a CNN+GRU from the ``akiki`` wheel, shipped as safetensors and as a
torch ``.pt`` zip) with its derivatives: a byte-identical re-upload, the shipped ``.pt`` as another
repo, F16/BF16 casts, a 1 % drift and a renamed copy (same shapes, other names). Its negatives are
nets of exactly its tensor layout trained here from other seeds on one synthetic task, sharing only
the fixed STFT ``basis`` buffer every model of the architecture carries.

Family 2 is a 2-D CNN (4-D conv kernels) trained here from several seeds; seed 0 gets the same
derivatives, the other seeds are its independent negatives. Every repo is a few hundred kB and
the whole set builds in a few seconds (testbed/demohub/numpy_train.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from hubscan.testbed.demohub import cards, variants
from hubscan.testbed.demohub.numpy_train import ConvNet, train
from hubscan.testbed.writers.safetensors_write import read_safetensors_np, write_safetensors

AKIKI = "akiki/akiki-vad"
CNN = "vision-lab/tiny-cnn-s0"
# akiki's layout: Conv1d 129 -> 128 -> 64 -> 64 -> 128 (kernel 3), a GRU of 128, one logit.
AKIKI_NET = ConvNet(((129, 128, 1, 3), (128, 64, 1, 3), (64, 64, 1, 3), (64, 128, 1, 3)), 128, 1, True)
CNN_NET = ConvNet(((1, 8, 3, 3), (8, 16, 3, 3), (16, 32, 3, 3)), None, 4, False, prefix="features")
# Independent runs per family: 3 seeds give 3 negative pairs among themselves and 3 per derivative.
NEGATIVE_SEEDS = (1, 2, 3)
# Enough steps to move every trained tensor well away from its initialisation (loss falls by
# half or more) while a run stays near a second on one core.
AKIKI_STEPS, CNN_STEPS = 80, 80
SAMPLES = 512
FRAMES, SIDE = 4, 8  # input sizes: small, since every step is an im2col over them
DATA_SEED = 7  # one dataset for every run: independent training of one task, the hard negative
RENAMES = {"encoder.": "features.conv", "rnn.": "gru.", "head.": "classifier.", "basis": "stft.basis",
           "features.": "body.layer"}  # fmt: skip
Builder = Callable[[Path], object]


def _speech_like(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N, 129 bins, 1, FRAMES) log-spectra; positives carry energy in bins 8-40 on some frames."""
    x = rng.standard_normal((SAMPLES, 129, 1, FRAMES)) * 0.5
    y = rng.integers(0, 2, (SAMPLES, 1)).astype(np.float64)
    frames = rng.random((SAMPLES, 1, 1, FRAMES)) < 0.6
    x[:, 8:40] += 1.2 * y[:, :, None, None] * frames
    return x, y


def _gratings(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, SIDE, SIDE) noisy gratings of four orientations; one-hot labels."""
    ii, jj = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    waves = [ii, jj, ii + jj, ii - jj]
    label = rng.integers(0, 4, SAMPLES)
    phase = rng.uniform(0, 2 * np.pi, SAMPLES)
    x = np.stack([np.sin(1.3 * waves[k] + p) for k, p in zip(label, phase, strict=True)])[:, None]
    x = x + rng.standard_normal(x.shape) * 0.6
    return x, np.eye(4)[label]


def trained(net: ConvNet, seed: int) -> dict[str, np.ndarray]:
    """One independent run of ``net`` on its family's task."""
    data = _speech_like if net.gru else _gratings
    x, y = data(np.random.default_rng(DATA_SEED))
    steps = AKIKI_STEPS if net.gru else CNN_STEPS
    return train(net, x, y, seed, steps)[0]


def _write_model(dst: Path, tensors: dict[str, np.ndarray], body: str) -> None:
    cards.write_card(dst, dst.name, "mit", None, ["safetensors"], body)
    write_safetensors(dst / variants.SINGLE_FILE, tensors, None, {"format": "pt"})


def akiki_repo(raw: Path, dst: Path) -> None:
    """The real akiki VAD as its Hub repo would hold it: safetensors, config and card."""
    native = raw / "akiki-vad-native"
    shutil.copyfile(native / "model.safetensors", dst / variants.SINGLE_FILE)
    shutil.copyfile(native / "config.json", dst / "config.json")
    cards.write_card(
        dst, dst.name, "mit", None, ["voice-activity-detection"], "A CNN+GRU voice activity detector."
    )


def akiki_pt_repo(raw: Path, dst: Path) -> None:
    """The wheel's own ``akiki-vad.pt`` (a torch zip of the same weights) as a repo of its own."""
    shutil.copyfile(raw / "akiki-vad.pt", dst / "akiki-vad.pt")
    cards.write_card(dst, dst.name, "mit", None, ["pytorch"], "The VAD as a PyTorch checkpoint.")


def akiki_negative(raw: Path, dst: Path, seed: int) -> None:
    """A net of akiki's exact layout trained from ``seed``, with akiki's fixed STFT basis."""
    tensors = trained(AKIKI_NET, seed)
    tensors["basis"] = read_safetensors_np(raw / "akiki-vad-native" / "model.safetensors")["basis"]
    _write_model(dst, tensors, f"A CNN+GRU voice activity detector trained from seed {seed}.")


def cnn_repo(dst: Path, seed: int) -> None:
    """A 2-D CNN trained from ``seed``."""
    _write_model(dst, trained(CNN_NET, seed), f"A small image classifier trained from seed {seed}.")


def _rename(name: str) -> str:
    for old, new in RENAMES.items():
        if name.startswith(old):
            return new + name.removeprefix(old)
    return name


def derivatives(base: str) -> list[tuple[str, str, Callable[[Path, Path], object]]]:
    """(repo id, description, builder(src, dst)) of the copies, casts, drift and rename of ``base``."""
    stem = "demohub/" + base.split("/")[1]
    return [
        (f"{stem}-reupload", f"unknown-arch: {base} re-uploaded byte for byte; undeclared", variants.reupload),
        (f"{stem}-f16", f"unknown-arch: F16 cast of {base}; card declares base_model",
         lambda s, d: variants.cast(s, d, "F16", base_model=base)),
        (f"{stem}-bf16", f"unknown-arch: BF16 cast of {base}; undeclared", lambda s, d: variants.cast(s, d, "BF16")),
        (f"{stem}-finetuned", f"unknown-arch: {base} plus Gaussian drift of 1% of each tensor's std; undeclared",
         lambda s, d: variants.finetune_like(s, d, 0.01, seed=0)),
        (f"{stem}-renamed", f"unknown-arch: {base} under other tensor names (same shapes); undeclared",
         lambda s, d: variants.rename(s, d, _rename)),
    ]  # fmt: skip


def unknown_arch_repos(root: Path, raw: Path | None) -> list[tuple[str, str, Builder]]:
    """Every repo of both families in build order; akiki's only when its wheel was fetched (``raw``)."""
    out: list[tuple[str, str, Builder]] = []
    if raw is not None:
        out.append((AKIKI, "real: akiki VAD (CNN+GRU, not a transformer) as shipped (from akiki==0.0.6)",
                    partial(akiki_repo, raw)))  # fmt: skip
        out += [(r, d, partial(make, root / AKIKI)) for r, d, make in derivatives(AKIKI)]
        out.append(("demohub/akiki-vad-pt", f"unknown-arch: {AKIKI} as the wheel's akiki-vad.pt (torch zip); "
                    "undeclared", partial(akiki_pt_repo, raw)))  # fmt: skip
        out += [(f"indep/vad-seed{s}", f"unknown-arch negative: akiki's layout trained from seed {s}; "
                 "unrelated to akiki", partial(akiki_negative, raw, seed=s)) for s in NEGATIVE_SEEDS]  # fmt: skip
    out.append((CNN, "unknown-arch: a 2-D CNN trained from seed 0", partial(cnn_repo, seed=0)))
    out += [(r, d, partial(make, root / CNN)) for r, d, make in derivatives(CNN)]
    out.append(("demohub/tiny-cnn-s0-pt", f"unknown-arch: {CNN} saved as pytorch_model.bin; undeclared",
                partial(variants.to_pytorch, root / CNN)))  # fmt: skip
    out += [(f"vision-lab/tiny-cnn-s{s}", f"unknown-arch negative: the 2-D CNN trained from seed {s}; "
             "unrelated to seed 0", partial(cnn_repo, seed=s)) for s in NEGATIVE_SEEDS]  # fmt: skip
    return out


def build_unknown_arch(
    root: Path, cache: Path, build_once: Callable[[Path, str, Builder], bool]
) -> tuple[dict[str, str], dict[str, str]]:
    """Build both families under ``root``: (repo id -> description, what was skipped -> why)."""
    from hubscan.testbed.demohub.realmodels import ModelUnavailable, fetch_real_model

    skipped: dict[str, str] = {}
    try:
        raw: Path | None = fetch_real_model(cache, "akiki")
    except ModelUnavailable as e:
        raw, skipped[AKIKI] = None, e.reason
    manifest = {}
    for repo_id, description, build in unknown_arch_repos(root, raw):
        build_once(root, repo_id, build)
        manifest[repo_id] = description
    return manifest, skipped
