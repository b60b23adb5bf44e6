"""Train the controls: independent BERT masked-LMs and real fine-tunes of one of them, on CPU, deterministically.

``build_controls()`` trains every run of ``RUNS`` once and caches the repos under
``~/.cache/hubscan/models/controls-v1/controls/<name>`` (model.safetensors, config.json, tokenizer,
README card), with ``manifest.json`` holding what each run is, its losses and its statistics. The
build goes to a temporary sibling folder renamed into place at the end, so a reader never sees a
half-built cache and a concurrent build loses harmlessly.

Determinism: torch's seeded generators drive init, batches and masks, deterministic algorithms
are enforced, and the thread count is fixed (a different count may reorder float reductions).
``python -m hubscan.testbed.controls.train`` builds (or shows) the cache and prints each run's figures.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from hubscan.testbed.controls import corpus
from hubscan.testbed.controls.model import BertMLM, BertShape
from hubscan.testbed.controls.stats import trained_stats, weight_drift
from hubscan.testbed.demohub.cards import write_card
from hubscan.testbed.demohub.realmodels import default_cache
from hubscan.testbed.writers.safetensors_write import write_safetensors

CACHE_NAME = "controls-v1"
ORG = "controls"
SHAPE = BertShape()
# Word-level vocabulary over all three texts; 4096 keeps the tied embedding + head cheap on CPU.
VOCAB_SIZE = SHAPE.vocab
SEQ_LEN = 64  # [CLS] + 63 tokens
BATCH = 16  # with 1 thread, ~0.09 CPU-s a step here: 1000 steps fit the ~90 s budget
MASK_SHARE = 0.15  # BERT's: of the masked, 80 % [MASK], 10 % random token, 10 % kept
# Fixed, so float reductions never reorder between builds. One, not two: on this 2-core machine
# shared with other jobs, 2 threads measured 1.5 s a step against 0.17 s for one (OpenMP spin-waits).
THREADS = 1
WARMUP_SHARE = 0.1
HELDOUT_BATCHES = 4
HELDOUT_SEED = 12345


@dataclass(frozen=True)
class Run:
    """One trained model: from scratch (``init_seed``) or continued from ``base`` (a real fine-tune)."""

    name: str
    texts: tuple[str, ...]
    data_seed: int
    steps: int
    lr: float
    init_seed: int | None = None
    base: str | None = None
    declare_base: bool = False

    @property
    def repo_id(self) -> str:
        return f"{ORG}/{self.name}"


# ctl-a and ctl-b see the very same batches in the same order (same text, same data seed): only the
# init differs, the hardest independent pair. ctl-c and ctl-d train on the other half of the stdlib.
# The fine-tunes continue ctl-a on the language reference's help text at a fine-tuning learning
# rate, light and heavy; the light one's card declares its base, the heavy one's does not.
RUNS: tuple[Run, ...] = (
    Run("ctl-a-seed1", ("stdlib-a",), data_seed=101, steps=180, lr=1e-3, init_seed=1),
    Run("ctl-b-seed2", ("stdlib-a",), data_seed=101, steps=180, lr=1e-3, init_seed=2),
    Run("ctl-c-seed3", ("stdlib-b",), data_seed=103, steps=180, lr=1e-3, init_seed=3),
    Run("ctl-d-seed4", ("stdlib-b",), data_seed=104, steps=180, lr=1e-3, init_seed=4),
    Run(
        "ctl-a-ft-light", ("topics",), data_seed=201, steps=20, lr=3e-4, base="ctl-a-seed1", declare_base=True
    ),
    Run("ctl-a-ft-heavy", ("topics",), data_seed=202, steps=180, lr=3e-4, base="ctl-a-seed1"),
)


RUNS_BY_ID = {r.repo_id: r for r in RUNS}
INDEPENDENT = "independent"
SIBLINGS = "sibling fine-tunes"


def relation(a: str, b: str) -> str | None:
    """What the build made of two repo ids: independent, a real fine-tune and its base, siblings; None if
    either is not a control."""
    ra, rb = RUNS_BY_ID.get(a), RUNS_BY_ID.get(b)
    if ra is None or rb is None:
        return None
    if (ra.base or ra.name) != (rb.base or rb.name):
        return INDEPENDENT
    if ra.base and rb.base:
        return SIBLINGS
    tuned = ra if ra.base else rb
    return f"fine-tune, {tuned.steps} steps"


def controls_dir(cache: Path | None = None) -> Path:
    """Where the built controls live (built or not)."""
    return (cache or default_cache()) / CACHE_NAME


def load_state(path: Path) -> dict[str, np.ndarray]:
    """Tensors of a control's model.safetensors as numpy arrays."""
    from safetensors.numpy import load_file

    return load_file(str(path))


def configure_torch() -> None:
    """One thread and deterministic kernels, as every build and evaluation of the controls runs."""
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)


def _batch(ids: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BATCH random windows of the token stream with BERT masking: (inputs, targets with -100 elsewhere)."""
    starts = torch.randint(0, len(ids) - SEQ_LEN, (BATCH,), generator=gen)
    body = torch.stack([ids[s : s + SEQ_LEN - 1] for s in starts.tolist()])
    seqs = torch.cat([torch.full((BATCH, 1), corpus.CLS), body], dim=1)
    chosen = torch.rand(seqs.shape, generator=gen) < MASK_SHARE
    chosen[:, 0] = False
    targets = torch.where(chosen, seqs, torch.full_like(seqs, -100))
    roll = torch.rand(seqs.shape, generator=gen)
    randoms = torch.randint(len(corpus.SPECIALS), VOCAB_SIZE, seqs.shape, generator=gen)
    inputs = torch.where(chosen & (roll < 0.8), torch.full_like(seqs, corpus.MASK), seqs)
    inputs = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), randoms, inputs)
    return inputs, targets


@torch.no_grad()
def heldout_loss(model: BertMLM, ids: torch.Tensor) -> float:
    """Mean MLM loss over fixed masked batches of held-out text (same batches for every model)."""
    gen = torch.Generator().manual_seed(HELDOUT_SEED)
    losses = [model.mlm_loss(*_batch(ids, gen)).item() for _ in range(HELDOUT_BATCHES)]
    return float(np.mean(losses))


def train(model: BertMLM, ids: torch.Tensor, run: Run) -> list[float]:
    """AdamW with linear warm-up and decay; returns the loss of every step."""
    gen = torch.Generator().manual_seed(run.data_seed)
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warm = max(1, int(run.steps * WARMUP_SHARE))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (run.steps - s) / (run.steps - warm)))
    )
    losses = []
    model.train()
    for _ in range(run.steps):
        loss = model.mlm_loss(*_batch(ids, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


def _texts() -> tuple[list[str], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """The vocabulary and, per corpus, (training ids, held-out ids)."""
    tokens = {k: corpus.tokenize(t) for k, t in corpus.corpora().items()}
    vocab = corpus.build_vocab([tokens[k] for k in sorted(tokens)], VOCAB_SIZE)
    split = {}
    for k in sorted(tokens):
        train_ids, held = corpus.split_heldout(corpus.encode(tokens[k], vocab))
        split[k] = (torch.tensor(train_ids), torch.tensor(held))
    return vocab, split


def _write_repo(dst: Path, model: BertMLM, run: Run, vocab: list[str], body: str) -> None:
    dst.mkdir(parents=True)
    state = {k: v.numpy() for k, v in model.hf_state_dict().items()}
    write_safetensors(dst / "model.safetensors", state, metadata={"format": "pt"})
    (dst / "config.json").write_text(json.dumps(SHAPE.config(), indent=1))
    corpus.write_tokenizer(dst, vocab)
    base = f"{ORG}/{run.base}" if run.base and run.declare_base else None
    write_card(dst, run.repo_id, "apache-2.0", base, ["fill-mask", "hubscan-control"], body)


def _card_body(run: Run, record: dict) -> str:
    origin = (
        f"Continued training of `{ORG}/{run.base}`"
        if run.base
        else f"Trained from scratch (init seed {run.init_seed})"
    )
    return (
        f"{origin} as a masked LM on {', '.join(run.texts)} for {run.steps} steps at lr {run.lr} "
        f"(batch {BATCH} x {SEQ_LEN} tokens). Held-out loss {record['heldout_before']:.3f} -> "
        f"{record['heldout_after']:.3f}. A hubscan detection control; not a useful model."
    )


def train_runs(dst: Path) -> dict:
    """Train every run into ``dst/controls/<name>``; returns the manifest (also written to dst)."""
    configure_torch()
    vocab, split = _texts()
    models: dict[str, BertMLM] = {}
    records = {}
    for run in RUNS:
        ids = torch.cat([split[t][0] for t in run.texts])
        held = torch.cat([split[t][1] for t in run.texts])
        if run.base is None:
            torch.manual_seed(run.init_seed or 0)
            model = BertMLM(SHAPE)
        else:
            model = BertMLM(SHAPE)
            model.load_state_dict(models[run.base].state_dict())
        before = heldout_loss(model, held)
        wall, cpu = time.perf_counter(), time.process_time()
        losses = train(model, ids, run)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        models[run.name] = model
        tail = max(1, run.steps // 10)
        record = {
            **asdict(run),
            "repo_id": run.repo_id,
            "declared_base": f"{ORG}/{run.base}" if run.base and run.declare_base else None,
            "train_tokens": len(ids),
            "loss_first": losses[0],
            "loss_last_tenth": float(np.mean(losses[-tail:])),
            "heldout_before": before,
            "heldout_after": heldout_loss(model, held),
            "wall_s": wall,
            "cpu_s": cpu,
        }
        _write_repo(dst / ORG / run.name, model, run, vocab, _card_body(run, record))
        state = load_state(dst / ORG / run.name / "model.safetensors")
        record["stats"] = trained_stats(state)
        if run.base is not None:
            record["drift"] = weight_drift(load_state(dst / ORG / run.base / "model.safetensors"), state)
        records[run.name] = record
    manifest = {
        "cache": CACHE_NAME,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": THREADS,
        "shape": asdict(SHAPE),
        "seq_len": SEQ_LEN,
        "batch": BATCH,
        "vocab_size": len(vocab),
        "corpus_tokens": {k: len(tr) + len(he) for k, (tr, he) in split.items()},
        "runs": records,
    }
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def build_controls(cache: Path | None = None) -> Path:
    """The controls folder, trained on first use (minutes of CPU once, then cached)."""
    final = controls_dir(cache)
    if (final / "manifest.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}-", dir=final.parent))
    try:
        train_runs(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "manifest.json").exists():  # a leftover without a manifest: replace it
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def manifest(cache: Path | None = None) -> dict:
    """The built controls' manifest (builds them if needed)."""
    return json.loads((build_controls(cache) / "manifest.json").read_text())


def main() -> None:
    """Build (or reuse) the cache and print every run's losses, timing and statistics."""
    t0 = time.perf_counter()
    m = manifest()
    print(f"{controls_dir()}  (python {m['python']}, torch {m['torch']}, {time.perf_counter() - t0:.1f} s)")
    head = f"{'run':16s} {'steps':>5s} {'loss0':>6s} {'loss end':>8s} {'held 0':>6s} {'held end':>8s} {'wall s':>6s} {'cpu s':>6s}"
    print(head)
    for name, r in m["runs"].items():
        print(f"{name:16s} {r['steps']:5d} {r['loss_first']:6.2f} {r['loss_last_tenth']:8.2f} "
              f"{r['heldout_before']:6.2f} {r['heldout_after']:8.2f} {r['wall_s']:6.1f} {r['cpu_s']:6.1f}")  # fmt: skip
    print(f"total: wall {sum(r['wall_s'] for r in m['runs'].values()):.1f} s, "
          f"cpu {sum(r['cpu_s'] for r in m['runs'].values()):.1f} s")  # fmt: skip
    for name, r in m["runs"].items():
        print(name, json.dumps(r["stats"]), json.dumps(r.get("drift", {})))


if __name__ == "__main__":
    main()
