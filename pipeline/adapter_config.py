"""What a PEFT adapter is: its declared base, type, rank, alpha, targets and the widths its tensors imply.

adapter_config.json is untrusted Hub data like config.json: values of the wrong type are ignored,
never raised on. The widths come from the tensors themselves (lora_A is [r, in], lora_B [out, r]),
so an adapter whose config lies about its base still shows the width it was trained for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hubscan.pipeline.roles import ADAPTER_KINDS, TensorRole

ADAPTER_CONFIG = "adapter_config.json"
# Roles whose Linear reads the residual stream (lora_A's in-features = hidden) and those that write
# it (lora_B's out-features = hidden); the MLP's inner width shows on the other side of each.
READS_HIDDEN = frozenset({"attn_q", "attn_k", "attn_v", "attn_qkv", "mlp_up", "mlp_gate", "mlp_gate_up"})
WRITES_HIDDEN = frozenset({"attn_o", "mlp_down"})
_PART_KINDS = frozenset(ADAPTER_KINDS.values())


@dataclass(frozen=True)
class AdapterFacts:
    """One adapter's declared and implied facts; None where neither the config nor the tensors say."""

    peft_type: str  # "LORA", "DORA", "IA3", or the config's own word for another method
    base: str | None  # base_model_name_or_path
    rank: int | None
    alpha: float | None
    targets: tuple[str, ...]  # target_modules as declared (a regex string is kept as one entry)
    layers: tuple[int, ...]  # block indices that carry adapter tensors
    modules_to_save: tuple[str, ...]
    hidden: int | None  # residual width implied by the tensors
    intermediate: int | None  # MLP inner width implied by the tensors


def adapter_facts(
    config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], roles: Mapping[str, TensorRole]
) -> AdapterFacts | None:
    """The facts of an adapter from its adapter_config.json and its tensors' shapes and roles; None when
    no tensor is an adapter part (a full model that kept a leftover adapter_config.json)."""
    if not any(r.kind in _PART_KINDS for r in roles.values()):
        return None
    peft_type = _str(config.get("peft_type")) or _type_from_kinds(roles)
    if peft_type == "LORA" and (config.get("use_dora") is True or _has_kind(roles, "dora_m")):
        peft_type = "DORA"
    hidden, inner = _widths(shapes, roles)
    # the rank lora_A's rows show, for configs that leave r out
    a_shapes = [tuple(shapes[n]) for n, r in roles.items() if r.kind == "lora_A" and n in shapes]
    ranks = Counter(s[0] for s in a_shapes if len(s) == 2)
    return AdapterFacts(
        peft_type=peft_type,
        base=_str(config.get("base_model_name_or_path")),
        rank=_int(config.get("r")) or (ranks.most_common(1)[0][0] if ranks else None),
        alpha=_float(config.get("lora_alpha")),
        targets=_names(config.get("target_modules")),
        layers=tuple(sorted({r.layer for r in roles.values() if r.layer is not None and r.kind != "weight"})),
        modules_to_save=_names(config.get("modules_to_save")),
        hidden=hidden.most_common(1)[0][0] if hidden else None,
        intermediate=inner.most_common(1)[0][0] if inner else None,
    )


def _widths(
    shapes: Mapping[str, Sequence[int]], roles: Mapping[str, TensorRole]
) -> tuple[Counter[int], Counter[int]]:
    """Votes for the residual and MLP inner widths from lora_A's in-features and lora_B's out-features."""
    hidden: Counter[int] = Counter()
    inner: Counter[int] = Counter()
    for name, role in roles.items():
        shape = tuple(shapes.get(name, ()))
        if len(shape) != 2 or role.kind not in ("lora_A", "lora_B"):
            continue
        if role.kind == "lora_A":  # [r, in]
            if role.role in READS_HIDDEN:
                hidden[shape[1]] += 1
            elif role.role == "mlp_down":
                inner[shape[1]] += 1
        elif role.role in WRITES_HIDDEN:  # lora_B [out, r]
            hidden[shape[0]] += 1
        elif role.role in ("mlp_up", "mlp_gate"):
            inner[shape[0]] += 1
    return hidden, inner


def _type_from_kinds(roles: Mapping[str, TensorRole]) -> str:
    """The method an adapter's tensors show when its config does not name one."""
    if _has_kind(roles, "ia3"):
        return "IA3"
    return "DORA" if _has_kind(roles, "dora_m") else "LORA"


def _has_kind(roles: Mapping[str, TensorRole], kind: str) -> bool:
    return any(r.kind == kind for r in roles.values())


def _str(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _float(value: object) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else None  # type: ignore[arg-type]


def _names(value: object) -> tuple[str, ...]:
    """A list of module names as a tuple; a single string (PEFT allows a regex) as one entry."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()
