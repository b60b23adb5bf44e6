"""PyTorch zip checkpoints read by range and walked, never unpickled: a real torch file, our writer,
the fake Hub's request log, and hostile pickles that must be refused without running."""

import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.config import Settings
from hubscan.pipeline.errors import FormatError, UnsafeContent
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.readers import checkpoint
from hubscan.pipeline.readers.byte_source import LocalFile
from hubscan.pipeline.readers.pickle_walk import MAX_MEMO_ENTRIES
from hubscan.pipeline.readers.ranges import Span, plan_requests
from hubscan.pipeline.readers.sampling import plan_rows
from hubscan.pipeline.readers.zip_directory import LOCAL_LEN
from hubscan.pipeline.roles import classify_all
from hubscan.pipeline.sources import hf
from hubscan.pipeline.sources.local import local_model
from hubscan.pipeline.sources.tokenizer import tokens_from_tokenizer_json
from hubscan.testbed.demohub.badrepos import system_payload
from hubscan.testbed.writers.safetensors_write import read_safetensors_np
from hubscan.testbed.writers.torch_write import TensorEntry, state_dict_pickle, write_records, write_torch_zip
from tests.real_checkpoints import real_model

SETTINGS = Settings()
EXACT = SETTINGS.with_(exact=True)
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_BIN = "demohub/all-MiniLM-L6-v2-pytorch"
MINILM_BIN_SHARDED = "demohub/minilm-bin-sharded"


@pytest.fixture(scope="module")
def akiki():
    return real_model("akiki")


def _read(path, settings=EXACT):
    with LocalFile(path, "org/m", "abc1234") as src:
        header = checkpoint.read_header(src, settings)
        rows = {r.header.name: r for r in checkpoint.read_rows(src, header, settings, lambda n: "other")}
        return header, rows, src.stats


def _values(rows, name, shape):
    return rows[name].values.reshape(shape)


# --- real torch bytes -------------------------------------------------------------------------


def test_real_torch_pt_equals_its_safetensors_twin(akiki):
    expected = read_safetensors_np(akiki / "akiki-vad-native" / "model.safetensors")
    header, rows, stats = _read(akiki / "akiki-vad.pt")
    assert {t.name for t in header.tensors} == set(expected)  # 'state_dict.' wrapper stripped
    for name, arr in expected.items():
        np.testing.assert_array_equal(_values(rows, name, arr.shape), arr)
    assert header.format == "pytorch" and len(header.guards) == len(expected)
    assert stats.requests == 2 + 1  # zip tail, data.pkl, then all rows in one merged request


def test_torch_data_offsets_follow_the_64_byte_rule_we_predict(akiki):
    """Every record of the real file starts where ZipEntry.torch_data_start says (the local header agrees)."""
    from hubscan.pipeline.readers.zip_directory import read_directory

    path = akiki / "akiki-vad.pt"
    raw = path.read_bytes()
    with LocalFile(path, "org/m") as src:
        directory = read_directory(src, SETTINGS.header_probe_bytes, SETTINGS.max_header_bytes)
    assert len(directory.entries) == 21
    for entry in directory.entries.values():
        n_len, e_len = struct.unpack_from("<HH", raw, entry.header_offset + 26)
        assert entry.torch_data_start() == entry.header_offset + LOCAL_LEN + n_len + e_len, entry.name
        assert entry.method == 0


def test_our_writer_reproduces_torchs_layout(akiki, tmp_path):
    tensors = read_safetensors_np(akiki / "akiki-vad-native" / "model.safetensors")
    ours = tmp_path / "ours.pt"
    write_torch_zip(ours, tensors)
    real_header, _, _ = _read(akiki / "akiki-vad.pt")
    our_header, rows, _ = _read(ours)
    shapes = {t.name: (t.dtype, t.shape, t.nbytes) for t in real_header.tensors}
    assert {t.name: (t.dtype, t.shape, t.nbytes) for t in our_header.tensors} == shapes
    for name, arr in tensors.items():
        np.testing.assert_array_equal(_values(rows, name, arr.shape), arr)
    with zipfile.ZipFile(ours) as zf:  # a valid zip for any other reader too, every record stored
        assert zf.testzip() is None
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    assert all(t.start % 64 == 0 for t in our_header.tensors)


def test_state_dict_with_metadata_build_and_parameters_reads(tmp_path):
    """torch.save(model.state_dict()) BUILDs the OrderedDict's _metadata; parameters wrap tensors."""
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    body = state_dict_pickle([TensorEntry("w", "FloatStorage", "0", 12, 0, (3, 4), (4, 1))])
    # BUILD {'_metadata': {}} on the OrderedDict, as torch.save(model.state_dict()) does.
    with_build = body[:-1] + b"}" + _unicode("_metadata") + b"}sb."
    write_records(tmp_path / "m.bin", "archive", {"data.pkl": with_build, "data/0": arr.tobytes()})
    header, rows, _ = _read(tmp_path / "m.bin")
    assert [t.name for t in header.tensors] == ["w"]
    np.testing.assert_array_equal(_values(rows, "w", (3, 4)), arr)
    param = (
        b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_parameter\n("
        + body[body.index(b"ctorch._utils\n_rebuild_tensor_v2") : body.rindex(b"u.")]
        + b"\x89ccollections\nOrderedDict\n)RtRs."
    )
    write_records(tmp_path / "p.bin", "archive", {"data.pkl": param, "data/0": arr.tobytes()})
    header, rows, _ = _read(tmp_path / "p.bin")
    np.testing.assert_array_equal(_values(rows, "w", (3, 4)), arr)


# --- MiniLM as .bin through the whole pipeline ------------------------------------------------


def _remote(settings, repo_id):
    http = HubHttp(settings)
    out = fingerprint_model(hf.resolve(http, repo_id), settings, http)
    assert out.ok, out.errors
    return out


@pytest.mark.parametrize("repo", [MINILM_BIN, MINILM_BIN_SHARDED])
def test_minilm_bin_fingerprints_equal_the_safetensors_original(testbed, settings, repo):
    base = {r["name"]: r for r in _remote(settings, MINILM).tensor_rows}
    local = fingerprint_model(local_model(testbed / repo, repo), settings)
    remote = _remote(settings, repo)
    assert local.ok and remote.model_row["format"] == local.model_row["format"] == "pytorch"
    assert len(remote.model_row["files"]) == (2 if repo == MINILM_BIN_SHARDED else 1)
    for out in (local, remote):
        assert {r["name"] for r in out.tensor_rows} == set(base)
        for r in out.tensor_rows:
            assert r["std"] == base[r["name"]]["std"], r["name"]
            assert r["sketch"] == base[r["name"]]["sketch"], r["name"]
            assert r["role"] == base[r["name"]]["role"]
    assert remote.model_row["has_tokens"]


def _ranges(hub, repo, filename):
    out = []
    for r in hub.log.snapshot():
        if r.repo_id == repo and r.filename == filename and r.range and r.origin == "cdn":
            begin, end = r.range.removeprefix("bytes=").split("-")
            out.append((int(begin), int(end) + 1))
    return sorted(out)


def test_request_log_shows_directory_pickle_and_sampled_rows_only(testbed, settings, hub):
    path = testbed / MINILM_BIN / "pytorch_model.bin"
    size = path.stat().st_size
    _remote(settings, MINILM)
    st_requests = len(_ranges(hub, MINILM, "model.safetensors"))
    hub.log.clear()
    out = _remote(settings, MINILM_BIN)
    served = _ranges(hub, MINILM_BIN, "pytorch_model.bin")
    # One request more than safetensors: the zip tail and data.pkl replace its one header probe.
    assert len(served) == st_requests + 1 == out.model_row["cdn_requests"]
    # One resolve for the weight file and one for tokenizer.json: the quota sees two requests.
    assert out.model_row["resolver_requests"] == 2 and out.model_row["api_requests"] == 0
    tail = [r for r in served if r[1] == size]
    pkl = [r for r in served if r[0] == 0]
    assert tail == [(size - settings.header_probe_bytes, size)]
    with zipfile.ZipFile(path) as zf:
        first_storage = zf.getinfo("archive/data/0").header_offset
    assert len(pkl) == 1 and pkl[0][1] <= first_storage  # data.pkl and byteorder, no storage byte
    # Every other request is exactly a merged run of planned spans: sampled row blocks and the
    # local header right before each storage's first rows.
    with LocalFile(path, MINILM_BIN) as src:
        header = checkpoint.read_header(src, settings)
    shapes = {t.name: t.shape for t in header.tensors}
    roles = classify_all(list(shapes), shapes)
    tokens = tokens_from_tokenizer_json((testbed / MINILM_BIN / "tokenizer.json").read_bytes())
    spans = [
        Span(*t.row_span(b.first, b.count), key=(t.name, b.first))
        for t in header.tensors
        for b in plan_rows(t, roles[t.name].role, settings, tokens)
    ]
    spans += [Span(g.begin, g.end, key=g.entry) for g in header.guards]
    planned = [(r.begin, r.end) for r in plan_requests(spans, settings.merge_gap_bytes)]
    rows = sorted(set(served) - set(tail) - set(pkl))
    assert rows == planned
    assert sum(e - b for b, e in served) < 0.06 * size


# --- hostile pickles: refused, never executed --------------------------------------------------


def _unicode(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _payloads(marker):
    touch = f"touch {marker}"
    eval_src = f"__import__('os').system({touch!r})"
    nest = 1000
    return {
        "os-system": (system_payload(marker), "pickle calls os.system; refused, never executed"),
        "posix-system": (
            system_payload(marker, "posix"),
            "pickle calls posix.system; refused, never executed",
        ),
        "stack-global-eval": (
            b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93" + _unicode(eval_src) + b"\x85R.",
            "pickle calls builtins.eval; refused, never executed",
        ),
        "wrong-arity": (
            b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nK\x00K\x01\x86R.",
            "pickle calls torch._utils._rebuild_tensor_v2 with 2 arguments, expected 6 or 7; refused, never executed",
        ),
        "storage-type-called": (
            b"\x80\x02ctorch\nFloatStorage\n" + _unicode(touch) + b"\x85R.",
            "pickle calls torch.FloatStorage; refused, never executed",
        ),
        "inst": (
            b"(" + f"S'{touch}'\n".encode() + b"ios\nsystem\n.",
            "pickle opcode INST (os.system) builds an arbitrary object; refused, never executed",
        ),
        "obj": (
            b"\x80\x02(ccollections\nOrderedDict\no.",
            "pickle opcode OBJ builds an arbitrary object; refused, never executed",
        ),
        "newobj": (
            b"\x80\x02ccollections\nOrderedDict\n)\x81.",
            "pickle opcode NEWOBJ builds an arbitrary object; refused, never executed",
        ),
        "build-on-list": (
            b"\x80\x02]}b.",
            "pickle BUILD sets state on a list; only an OrderedDict may take one; refused, never executed",
        ),
        "ext": (
            b"\x80\x02\x82\x01.",
            "pickle opcode EXT1 names a registered extension; refused, never executed",
        ),
        "deep-nesting": (
            b"\x80\x02" + b"]" * nest + b"a" * (nest - 1) + b".",
            "pickle nests containers deeper than 100 levels; refused as a pickle bomb",
        ),
        "huge-memo": (
            b"\x80\x02]" + b"".join(b"r" + struct.pack("<I", i) for i in range(MAX_MEMO_ENTRIES + 1)) + b".",
            f"pickle memo exceeds {MAX_MEMO_ENTRIES} entries; refused as a pickle bomb",
        ),
    }


CASES = sorted(_payloads("M"))


def test_the_os_system_payload_is_live_when_unpickled(tmp_path):
    """The control: the stdlib unpickler (in a throwaway process) does run it, so the tests below can fail."""
    marker = tmp_path / "ran"
    code = "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())"
    (tmp_path / "p").write_bytes(system_payload(marker))
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "p")], check=True, timeout=60)
    assert marker.exists()


@pytest.mark.parametrize("case", CASES)
def test_hostile_pickle_is_refused_in_one_line_and_never_executed(tmp_path, case):
    marker = tmp_path / "ran"
    pkl, reason = _payloads(marker)[case]
    path = tmp_path / "pytorch_model.bin"
    write_records(path, "archive", {"data.pkl": pkl})
    modules = set(sys.modules)
    with LocalFile(path, "evil/model", "abc1234") as src, pytest.raises(UnsafeContent) as info:
        checkpoint.read_header(src, SETTINGS)
    assert str(info.value) == f"evil/model@abc1234:pytorch_model.bin: archive/data.pkl: {reason}"
    assert not marker.exists()
    assert set(sys.modules) == modules  # nothing was imported on the pickle's behalf


# --- broken files: FormatError, one line -----------------------------------------------------


def _tiny(tmp_path, **records):
    arr = np.arange(64, dtype=np.float32).reshape(8, 8)
    entry = TensorEntry("w", "FloatStorage", "0", 64, 0, (8, 8), (8, 1))
    base = {"data.pkl": state_dict_pickle([entry]), "byteorder": b"little", "data/0": arr.tobytes()}
    path = tmp_path / "m.bin"
    write_records(path, "archive", {**base, **records})
    return path


def _refusal(path, settings=EXACT):
    with pytest.raises(FormatError) as info:
        _read(path, settings)
    return info.value.reason


def test_non_contiguous_strides_are_refused(tmp_path):
    entry = TensorEntry("w", "FloatStorage", "0", 64, 0, (8, 8), (1, 8))
    path = _tiny(tmp_path, **{"data.pkl": state_dict_pickle([entry])})
    assert _refusal(path) == "tensor w: strides [1, 8] are not contiguous for shape [8, 8]; not supported"


def test_big_endian_storages_are_refused(tmp_path):
    path = _tiny(tmp_path, byteorder=b"big")
    assert _refusal(path) == "storages are big-endian; only little-endian is supported"


def test_storage_past_the_end_of_the_file_is_refused(tmp_path):
    path = _tiny(tmp_path)
    raw = bytearray(path.read_bytes())
    last = raw.rindex(b"PK\x01\x02")  # the last central record is data/0's
    struct.pack_into("<I", raw, last + 42, len(raw) + 1000)  # its local header offset
    path.write_bytes(bytes(raw))
    cd = raw.index(b"PK\x01\x02")
    begin = len(raw) + 1000
    assert _refusal(path) == (
        f"zip entry archive/data/0: bytes {begin}-{begin + 256} run into the central directory at {cd}"
    )


def test_a_zip_not_aligned_like_torch_is_refused_when_its_rows_are_read(tmp_path):
    arr = np.arange(64, dtype=np.float32).reshape(8, 8)
    entry = TensorEntry("w", "FloatStorage", "0", 64, 0, (8, 8), (8, 1))
    path = tmp_path / "m.bin"
    with zipfile.ZipFile(path, "w") as zf:  # the stdlib writer: no 64-byte padding
        zf.writestr("archive/data.pkl", state_dict_pickle([entry]))
        zf.writestr("archive/data/0", arr.tobytes())
        zf.writestr("archive/version", b"3\n" * 64)
    assert _refusal(path).startswith("zip entry archive/data/0: data starts at byte ")


def test_truncated_compressed_and_legacy_files_name_their_problem(tmp_path):
    path = _tiny(tmp_path)
    path.write_bytes(path.read_bytes()[:300])
    assert _refusal(path) == (
        "not a zip archive (no end-of-central-directory record); truncated or not a torch checkpoint"
    )
    legacy = tmp_path / "legacy.bin"
    legacy.write_bytes(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19." + bytes(100))
    assert _refusal(legacy) == "legacy torch serialization (not a zip); not supported"
    write_records(tmp_path / "c.bin", "archive", {"data.pkl": b"\x80\x02}."}, frozenset({"data.pkl"}))
    assert _refusal(tmp_path / "c.bin") == (
        "zip entry archive/data.pkl is compressed (method 8); torch checkpoints store entries uncompressed"
    )
