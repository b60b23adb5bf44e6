"""A short fixed-seed fuzz pass of every parser, and each crash the fuzzer found, minimised.

`python -m bench.fuzz` runs the coverage-guided search (atheris, 100k inputs a parser); this
pass replays the seeds and 2,000 deterministic mutations so CI catches a regression
in seconds. A crash is any exception but a HubscanError.
"""

import json
import struct

import numpy as np
import pytest

from bench.fuzz_targets import TARGETS, mutate, run_one, torch_seeds
from hubscan.pipeline.bounded_json import MAX_JSON_DEPTH, json_depth
from hubscan.pipeline.sources.tokenizer import tokens_from_tokenizer_json

# Mutations per parser: a couple of seconds each, well under the suite's budget.
MUTATIONS = 2000


@pytest.mark.parametrize("name", list(TARGETS))
def test_fixed_seed_fuzz_pass_finds_no_crash(name):
    target = TARGETS[name]
    seeds = target.seeds()
    rng = np.random.default_rng(20251206)
    crashes = [(s[:40], run_one(target, s)) for s in seeds]
    for _ in range(MUTATIONS):
        data = mutate(seeds[int(rng.integers(len(seeds)))], rng)
        crashes.append((data[:40], run_one(target, data)))
    assert [c for c in crashes if c[1] is not None] == []


def _safetensors(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_a_zero_width_tensor_decodes_to_no_columns():
    # Found by the fuzzer: a zero-byte span was never fetched, and decoding it raised KeyError.
    header = {
        "a": {"dtype": "F32", "shape": [4, 0], "data_offsets": [0, 0]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    }
    assert run_one(TARGETS["safetensors"], _safetensors(header, b"\0" * 8)) is None


def test_a_zip64_extra_field_longer_than_its_entry_is_not_a_crash():
    # Found by the fuzzer: the ZIP64 extra declared 24 bytes where the entry held 15 (struct.error).
    data = bytearray(torch_seeds()[0])
    cd = data.rfind(b"PK\x01\x02")
    n_len, e_len = struct.unpack_from("<HH", data, cd + 28)
    extra = cd + 46 + n_len
    data[extra : extra + e_len] = struct.pack("<HH", 0x0001, 24) + b"\0" * (e_len - 4)
    assert run_one(TARGETS["torch-zip"], bytes(data)) is None


@pytest.mark.parametrize(
    "doc",
    [
        b'{"model": {"vocab": {"a": 1000000000000}}}',  # would allocate a 10^12-entry id table
        b'{"model": {"vocab": {"a": -3}}}',
        b"[]",
        b'{"model": []}',
        b'{"model": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ],
    ids=["huge-id", "negative-id", "not-an-object", "model-not-an-object", "deep"],
)
def test_a_hostile_tokenizer_json_only_disables_token_alignment(doc):
    assert tokens_from_tokenizer_json(doc) is None


def test_added_tokens_that_are_not_a_list_are_ignored():
    assert tokens_from_tokenizer_json(b'{"model": {"vocab": {"a": 0}}, "added_tokens": 7}') == ["a"]


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b'{"a": [1, [2]], "b": "[[[[\\"[["}', 3),  # brackets in strings, an escaped quote
        (b'["\\\\", [[1]]]', 3),  # an escaped backslash ends its string
        (b"[" * 5000 + b"]" * 5000, 5000),
        (b'"[[[', 0),
        (b"", 0),
    ],
)
def test_json_depth_counts_only_structural_brackets(raw, depth):
    assert json_depth(raw) == depth


def test_no_document_within_the_depth_cap_overflows_the_json_parser():
    rng = np.random.default_rng(7)
    for _ in range(200):
        depth = int(rng.integers(1, 3 * MAX_JSON_DEPTH))
        opens = rng.choice(list(b"[{"), depth).astype(np.uint8).tobytes()
        doc = b"".join(b"[" if c == ord("[") else b'{"k":' for c in opens) + b"0"
        doc += b"".join(b"]" if c == ord("[") else b"}" for c in reversed(opens))
        assert json_depth(doc) == depth
        json.loads(doc)  # valid at every depth tried, and the count matches the parser's view


@pytest.mark.parametrize(
    "answer",
    [
        b'{"sha": "a", "siblings": [{"rfilename": "model.safetensors"}, {"rfilename": 10}]}',  # fuzzer
        b'{"sha": "a", "siblings": [7, {"rfilename": "model.safetensors", "lfs": [], "size": "x"}]}',
        b'{"sha": "a", "siblings": {"rfilename": "x"}, "cardData": [], "config": 3}',
        b"[1, 2]",
    ],
    ids=["name-not-a-string", "entries-not-objects", "fields-of-the-wrong-type", "not-an-object"],
)
def test_a_malformed_model_info_answer_is_a_source_error_not_a_crash(answer):
    assert run_one(TARGETS["model-info"], answer) is None
