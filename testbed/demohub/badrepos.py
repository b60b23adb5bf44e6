"""Repos whose weights are broken or off-limits, so reader tests meet each failure the Hub can serve.

Every file is crafted byte by byte (the safetensors library refuses to write any of them). The
pickle-only repo's payload would call ``builtins.print`` if anyone unpickled it: harmless, yet a
non-tensor global that a safe reader must refuse without executing. The malicious-pickle repo's
payload is live: unpickled, it runs ``os.system("touch MALICIOUS_MARKER")``; tests assert the
marker never appears.
"""

from __future__ import annotations

import io
import json
import math
import struct
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hubscan.testbed.demohub import cards
from hubscan.testbed.writers.safetensors_write import write_raw_safetensors, write_safetensors
from hubscan.testbed.writers.torch_write import TensorEntry, state_dict_pickle, write_records, write_torch_zip

BAD_ORG = "badhub"
# Repo ids per failure kind; make_bad_repos returns this mapping.
BAD_REPOS = {
    "truncated": f"{BAD_ORG}/truncated-safetensors",
    "header-too-large": f"{BAD_ORG}/header-length-2e60",
    "overlapping-offsets": f"{BAD_ORG}/overlapping-offsets",
    "offsets-past-end": f"{BAD_ORG}/offsets-past-end",
    "unknown-dtype": f"{BAD_ORG}/unknown-dtype",
    "nan-inf": f"{BAD_ORG}/nan-inf",
    "malformed-json": f"{BAD_ORG}/malformed-json-header",
    "empty": f"{BAD_ORG}/empty-repo",
    "pickle-only": f"{BAD_ORG}/pickle-only",
    "malicious-pickle": f"{BAD_ORG}/malicious-pickle",
    "torch-truncated": f"{BAD_ORG}/torch-truncated",
    "torch-compressed": f"{BAD_ORG}/torch-compressed",
    "torch-legacy": f"{BAD_ORG}/torch-legacy",
    "torch-offset-past-end": f"{BAD_ORG}/torch-offset-past-end",
    "gated": f"{BAD_ORG}/gated-model",
}
HEADER_LEN_HUGE = 2**60
# Protocol-2 pickle: GLOBAL builtins.print, call it with one string, STOP.
_MSG = b"hubscan: this pickle must never be unpickled"
PICKLE_PAYLOAD = (
    b"\x80\x02cbuiltins\nprint\nq\x00X" + struct.pack("<I", len(_MSG)) + _MSG + b"\x85q\x01Rq\x02."
)
# Where the live payload of the malicious-pickle repo would leave its mark if it ever ran.
MALICIOUS_MARKER = Path(tempfile.gettempdir()) / "hubscan-malicious-pickle-was-executed"
# torch < 1.6 wrote bare pickles; the first is this magic number (torch/serialization.py).
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def system_payload(marker: Path, module: str = "os") -> bytes:
    """Protocol-2 pickle: GLOBAL <module>.system, REDUCE with ("touch <marker>",), STOP."""
    cmd = f"touch {marker}".encode()
    return b"\x80\x02c" + module.encode() + b"\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."


def tiny_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """A small, well-formed two-layer tensor set to corrupt (deterministic)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for i in range(2):
        out[f"layers.{i}.attn.q_proj.weight"] = rng.standard_normal((64, 64), dtype=np.float32) * 0.05
        out[f"layers.{i}.mlp.up_proj.weight"] = rng.standard_normal((128, 64), dtype=np.float32) * 0.05
        out[f"layers.{i}.norm.weight"] = np.ones(64, dtype=np.float32)
    return out


def _f32_header(
    shapes: Mapping[str, tuple[int, ...]], offsets: Mapping[str, tuple[int, int]]
) -> dict[str, object]:
    """Header entries in the given order with hand-picked offsets."""
    return {
        n: {"dtype": "F32", "shape": list(s), "data_offsets": list(offsets[n])} for n, s in shapes.items()
    }


def _truncated(dst: Path) -> None:
    """A valid file cut in the middle of its data."""
    path = dst / "model.safetensors"
    n_data = write_safetensors(path, tiny_tensors())
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - n_data // 2)


def _header_too_large(dst: Path) -> None:
    """Header length field of 2**60: a reader must refuse before allocating anything."""
    header = {"a.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    write_raw_safetensors(dst / "model.safetensors", header, bytes(16), declared_len=HEADER_LEN_HUGE)


def _overlapping(dst: Path) -> None:
    """Two tensors claiming the same bytes (b starts inside a)."""
    shapes = {"a.weight": (32, 32), "b.weight": (32, 32)}
    header = _f32_header(shapes, {"a.weight": (0, 4096), "b.weight": (2048, 6144)})
    write_raw_safetensors(dst / "model.safetensors", header, bytes(6144))


def _past_end(dst: Path) -> None:
    """Offsets consistent with the shapes but beyond the bytes the file holds."""
    shapes = {"a.weight": (32, 32), "b.weight": (64, 32)}
    header = _f32_header(shapes, {"a.weight": (0, 4096), "b.weight": (4096, 12288)})
    write_raw_safetensors(dst / "model.safetensors", header, bytes(8192))


def _unknown_dtype(dst: Path) -> None:
    """A dtype name no reader knows."""
    header = {
        "a.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]},
        "b.weight": {"dtype": "Q9_ZZ", "shape": [4, 4], "data_offsets": [64, 128]},
    }
    write_raw_safetensors(dst / "model.safetensors", header, bytes(128))


def _nan_inf(dst: Path) -> None:
    """Well-formed file whose values include NaN and +/-inf."""
    tensors = tiny_tensors()
    q = tensors["layers.0.attn.q_proj.weight"]
    q[3, 5], q[10, 0], q[20, 7] = math.nan, math.inf, -math.inf
    tensors["layers.1.norm.weight"][:] = math.nan
    write_safetensors(dst / "model.safetensors", tensors, None, {"format": "pt"})


def _malformed_json(dst: Path) -> None:
    """A header that stops mid-object."""
    raw = b'{"a.weight":{"dtype":"F32","shape":[4,4],"data_offsets":[0,'
    raw += b" " * (-len(raw) % 8)
    write_raw_safetensors(dst / "model.safetensors", raw, bytes(64))


def _pickle_only(dst: Path) -> None:
    """Only a torch-style zip ``pytorch_model.bin`` whose data.pkl calls a non-tensor global."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # torch.save stores, never deflates
        zf.writestr("archive/data.pkl", PICKLE_PAYLOAD)
        zf.writestr("archive/version", "3\n")
    (dst / "pytorch_model.bin").write_bytes(buf.getvalue())
    cards.write_json(dst / "config.json", {"model_type": "llama", "architectures": ["LlamaForCausalLM"]})


def _malicious_pickle(dst: Path) -> None:
    """A torch zip whose data.pkl runs os.system("touch MALICIOUS_MARKER") when unpickled."""
    write_records(dst / "pytorch_model.bin", "archive", {"data.pkl": system_payload(MALICIOUS_MARKER)})


def _torch_truncated(dst: Path) -> None:
    """A torch zip cut in the middle: its end record and central directory are gone."""
    path = dst / "pytorch_model.bin"
    write_torch_zip(path, tiny_tensors())
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _torch_compressed(dst: Path) -> None:
    """A torch zip whose storages are deflated: not readable by range."""
    tensors = tiny_tensors()
    write_torch_zip(dst / "scratch.bin", tensors)
    with zipfile.ZipFile(dst / "scratch.bin") as zf:
        records = {i.filename.split("/", 1)[1]: zf.read(i) for i in zf.infolist()}
    (dst / "scratch.bin").unlink()
    deflate = frozenset(n for n in records if n.startswith("data/"))
    write_records(dst / "pytorch_model.bin", "archive", records, deflate)


def _torch_legacy(dst: Path) -> None:
    """Pre-1.6 serialization: bare pickles, starting with the magic number (no zip)."""
    magic = LEGACY_MAGIC.to_bytes(10, "little")
    (dst / "pytorch_model.bin").write_bytes(b"\x80\x02\x8a\x0a" + magic + b"." + bytes(64))


def _torch_offset_past_end(dst: Path) -> None:
    """A tensor whose storage_offset puts its bytes past the end of its storage."""
    entry = TensorEntry("layers.0.attn.q_proj.weight", "FloatStorage", "0", 64 * 64, 4096, (64, 64), (64, 1))
    arr = tiny_tensors()["layers.0.attn.q_proj.weight"]
    records = {"data.pkl": state_dict_pickle([entry]), "byteorder": b"little", "data/0": arr.tobytes()}
    write_records(dst / "pytorch_model.bin", "archive", records)


def _gated(dst: Path) -> None:
    """A readable model behind manual gating; the fake hub reads ``.fakehub.json``."""
    write_safetensors(dst / "model.safetensors", tiny_tensors(1), None, {"format": "pt"})
    (dst / ".fakehub.json").write_text(json.dumps({"gated": "manual"}) + "\n")


_MAKERS = {
    "truncated": _truncated,
    "header-too-large": _header_too_large,
    "overlapping-offsets": _overlapping,
    "offsets-past-end": _past_end,
    "unknown-dtype": _unknown_dtype,
    "nan-inf": _nan_inf,
    "malformed-json": _malformed_json,
    "empty": lambda dst: None,
    "pickle-only": _pickle_only,
    "malicious-pickle": _malicious_pickle,
    "torch-truncated": _torch_truncated,
    "torch-compressed": _torch_compressed,
    "torch-legacy": _torch_legacy,
    "torch-offset-past-end": _torch_offset_past_end,
    "gated": _gated,
}


def write_bad_repo(dst: Path, kind: str) -> Path:
    """Write the bad repo of ``kind`` into folder ``dst`` (overwriting its files)."""
    dst.mkdir(parents=True, exist_ok=True)
    cards.write_card(dst, dst.name, "apache-2.0", None, ["test-fixture"], f"Bad input: {kind}.")
    _MAKERS[kind](dst)
    return dst


def make_bad_repos(root: Path) -> dict[str, str]:
    """Write every bad repo at ``root/<org>/<name>``; returns kind -> repo id."""
    for kind, repo_id in BAD_REPOS.items():
        write_bad_repo(root / repo_id, kind)
    return dict(BAD_REPOS)
