"""A PEFT adapter's facts from adapter_config.json and its tensors: LoRA, DoRA and IA3 named, widths implied
by the A/B shapes, and a config that lies or breaks never stops the adapter being read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hubscan.jobs import fingerprint, sql
from hubscan.pipeline.adapter_config import adapter_facts
from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.config import Settings
from hubscan.pipeline.roles import classify, classify_all
from hubscan.pipeline.sources.local import local_model
from hubscan.testbed.writers.peft_write import PREFIX, Lora, write_adapter_repo
from hubscan.testbed.writers.safetensors_write import write_safetensors

LLAMA = "base_model.model.model.layers.{i}.{m}"
MODULES = {
    "self_attn.q_proj": (4096, 4096),
    "self_attn.o_proj": (4096, 4096),
    "mlp.up_proj": (11008, 4096),
    "mlp.down_proj": (4096, 11008),
}  # fmt: skip  (out, in) of Llama-2-7B's Linears


def _lora_shapes(rank: int = 16, layers: int = 2) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(layers):
        for m, (out, inp) in MODULES.items():
            shapes[LLAMA.format(i=i, m=m) + ".lora_A.weight"] = (rank, inp)
            shapes[LLAMA.format(i=i, m=m) + ".lora_B.weight"] = (out, rank)
    return shapes


def _facts(config: object, shapes: dict[str, tuple[int, ...]]):
    return adapter_facts(
        config if isinstance(config, dict) else {}, shapes, classify_all(list(shapes), shapes)
    )


@pytest.mark.parametrize(
    ("name", "role", "kind"),
    [
        (PREFIX + "encoder.layer.3.attention.self.query.lora_A.weight", "attn_q", "lora_A"),
        (PREFIX + "encoder.layer.3.output.dense.lora_B.weight", "mlp_down", "lora_B"),
        (PREFIX + "model.layers.7.self_attn.v_proj.lora_magnitude_vector", "attn_v", "dora_m"),
        (PREFIX + "model.layers.7.self_attn.v_proj.lora_magnitude_vector.weight", "attn_v", "dora_m"),
        (PREFIX + "model.layers.7.mlp.down_proj.ia3_l", "mlp_down", "ia3"),
        (PREFIX + "model.embed_tokens.lora_embedding_A", "embed", "lora_A"),
    ],
)
def test_peft_parts_keep_their_linears_role_under_a_kind_of_their_own(name, role, kind):
    got = classify(name)
    assert (got.role, got.kind, got.transposed) == (role, kind, False)


def test_a_lora_implies_hidden_and_mlp_width_from_its_a_and_b_shapes():
    config = {"peft_type": "LORA", "base_model_name_or_path": "meta-llama/Llama-2-7b-hf", "r": 16,
              "lora_alpha": 32, "target_modules": ["q_proj", "o_proj", "up_proj", "down_proj"],
              "modules_to_save": ["lm_head"]}  # fmt: skip
    f = _facts(config, _lora_shapes())
    assert (f.peft_type, f.base, f.rank, f.alpha) == ("LORA", "meta-llama/Llama-2-7b-hf", 16, 32.0)
    assert (f.hidden, f.intermediate, f.layers) == (4096, 11008, (0, 1))
    assert (f.targets, f.modules_to_save) == (("q_proj", "o_proj", "up_proj", "down_proj"), ("lm_head",))


def test_dora_and_ia3_are_named():
    shapes = _lora_shapes()
    shapes[LLAMA.format(i=0, m="self_attn.q_proj") + ".lora_magnitude_vector"] = (4096,)
    assert _facts({"peft_type": "LORA", "use_dora": True}, shapes).peft_type == "DORA"
    assert _facts({}, shapes).peft_type == "DORA"  # the magnitude vector says so without a config
    ia3 = {LLAMA.format(i=0, m="mlp.down_proj") + ".ia3_l": (1, 11008)}
    assert _facts({"peft_type": "IA3", "target_modules": "down_proj"}, ia3).peft_type == "IA3"
    assert _facts({}, ia3).targets == ()


@pytest.mark.parametrize("config", [[], "LORA", {"r": "16", "lora_alpha": True, "target_modules": 7,
                                                 "base_model_name_or_path": ["x"]}])  # fmt: skip
def test_a_config_of_the_wrong_shape_leaves_the_facts_to_the_tensors(config):
    f = _facts(config, _lora_shapes(rank=8))
    assert (f.rank, f.alpha, f.base, f.targets, f.hidden) == (8, None, None, (), 4096)


def _adapter_repo(tmp_path, config_bytes: bytes | None):
    rng = np.random.default_rng(0)
    lora = Lora("org/base", 4, 8.0, ("query",), {
        f"encoder.layer.{i}.attention.self.query": (rng.normal(0, 0.05, (4, 64)).astype(np.float32),
                                                    rng.normal(0, 0.01, (64, 4)).astype(np.float32))
        for i in range(2)
    })  # fmt: skip
    repo = write_adapter_repo(tmp_path / "org" / "adapter", lora)
    if config_bytes is not None:
        (repo / "adapter_config.json").write_bytes(config_bytes)
    return repo


@pytest.mark.parametrize("config_bytes", [None, b"{not json", b"[" * 100_000, json.dumps([1, 2]).encode()])
def test_an_adapter_repo_is_stored_as_an_adapter_whatever_its_config_holds(tmp_path, config_bytes):
    repo = _adapter_repo(tmp_path, config_bytes)
    out = fingerprint_model(local_model(repo, "org/adapter"), Settings(store=tmp_path / "store"))
    assert out.ok, out.errors
    m = out.model
    assert m is not None and (m.adapter_type, m.hidden, m.adapter_rank, m.adapter_layers) == (
        "LORA",
        64,
        4,
        [0, 1],
    )
    declared = config_bytes is None
    assert m.adapter_base == ("org/base" if declared else None)
    assert m.adapter_alpha == (8.0 if declared else None)
    assert m.base_models == ["org/base"]  # the card declares it either way


@pytest.mark.parametrize("leftover_config", [False, True])
def test_a_model_with_weights_of_its_own_has_no_adapter_facts(tmp_path, leftover_config):
    repo = tmp_path / "org" / "plain"
    repo.mkdir(parents=True)
    if leftover_config:  # merged and uploaded with the adapter's config still beside the weights
        (repo / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    write_safetensors(repo / "model.safetensors", {"encoder.layer.0.attention.self.query.weight": np.eye(64, dtype=np.float32)})  # fmt: skip
    out = fingerprint_model(local_model(repo, "org/plain"), Settings(store=tmp_path / "store"))
    assert out.model is not None and out.model.adapter_type is None and out.model.adapter_targets is None


def _tiny_base(root, hidden: int = 64, inner: int = 128, layers: int = 2):
    rng = np.random.default_rng(1)
    tensors = {"embeddings.word_embeddings.weight": rng.normal(0, 0.05, (100, hidden)).astype(np.float32)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        tensors[p + "attention.self.query.weight"] = rng.normal(0, 0.05, (hidden, hidden)).astype(np.float32)
        tensors[p + "intermediate.dense.weight"] = rng.normal(0, 0.05, (inner, hidden)).astype(np.float32)
        tensors[p + "output.dense.weight"] = rng.normal(0, 0.05, (hidden, inner)).astype(np.float32)
    repo = root / "org" / "base"
    repo.mkdir(parents=True)
    write_safetensors(repo / "model.safetensors", tensors)
    return repo


def _write_adapter(root, name: str, base: str, modules: dict[str, tuple[int, int]], rank: int = 4):
    rng = np.random.default_rng(2)
    weights = {m: (rng.normal(0, 0.05, (rank, i)).astype(np.float32), rng.normal(0, 0.01, (o, rank)).astype(np.float32))
               for m, (o, i) in modules.items()}  # fmt: skip
    return write_adapter_repo(root / "org" / name, Lora(base, rank, 8.0, ("query",), weights))


def test_the_fit_check_names_what_does_not_fit(tmp_path):
    repos = [_tiny_base(tmp_path)]
    q, down = "encoder.layer.{}.attention.self.query", "encoder.layer.{}.output.dense"
    repos.append(
        _write_adapter(tmp_path, "fits", "org/base", {q.format(0): (64, 64), down.format(1): (64, 128)})
    )
    repos.append(
        _write_adapter(tmp_path, "mlp", "org/base", {q.format(0): (64, 64), down.format(1): (64, 256)})
    )
    repos.append(_write_adapter(tmp_path, "deep", "org/base", {q.format(0): (64, 64), q.format(5): (64, 64)}))
    repos.append(_write_adapter(tmp_path, "orphan", "org/missing", {q.format(0): (64, 64)}))
    ia3 = tmp_path / "org" / "ia3"
    ia3.mkdir(parents=True)
    write_safetensors(ia3 / "adapter_model.safetensors",
                      {PREFIX + down.format(0) + ".ia3_l": np.ones((1, 128), np.float32)})  # fmt: skip
    (ia3 / "adapter_config.json").write_text(
        json.dumps({"peft_type": "IA3", "base_model_name_or_path": "org/base"})
    )
    repos.append(ia3)
    settings = Settings(store=tmp_path / "store")
    assert fingerprint.run(settings, [str(p) for p in repos]).failed == 0
    fit = {r["repo_id"]: (r["type"], r["fit"]) for r in sql.run(settings, "adapters", {}).to_pylist()}
    assert fit == {
        "org/fits": ("LORA", "fits"),
        "org/mlp": ("LORA", "does not fit: base MLP width 128, adapter 256"),
        "org/deep": ("LORA", "does not fit: base has 2 layers, adapter adapts layer 5"),
        "org/orphan": ("LORA", "base not in the store"),
        "org/ia3": ("IA3", "unknown: the adapter's tensors imply no hidden size"),
    }
