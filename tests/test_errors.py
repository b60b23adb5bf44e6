"""Errors cross process boundaries (Ray pickles them) and always read as one line naming model and file."""

import json
import pickle
import struct
import zlib

import numpy as np
import pytest

from hubscan.pipeline import errors

CLASSES = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.HubscanError)]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_round_trips_through_pickle(cls):
    exc = cls(
        "org/model",
        "1a2b3c4d5e",
        "model-00002-of-00004.safetensors",
        "header length\n9000000000 exceeds 100000000",
    )
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert str(back) == str(exc)
    assert back.category == ("internal" if cls is errors.InternalError else cls.__name__)


def test_message_is_one_line_naming_model_revision_and_file():
    exc = errors.MalformedHeader(
        "org/model", "1a2b3c4d5e", "model.safetensors", "header length\n  9000000000 exceeds 100000000"
    )
    assert str(exc) == "org/model@1a2b3c4:model.safetensors: header length 9000000000 exceeds 100000000"


def test_fetch_error_keeps_status_and_range_across_pickle():
    exc = errors.RateLimited("org/m", "abc", "f.safetensors", "HTTP 429", 429, (0, 100))
    back = pickle.loads(pickle.dumps(exc))
    assert (back.status, back.byte_range) == (429, (0, 100))


def _raised(call):
    try:
        call()
    except BaseException as exc:  # whatever the decoder raises
        return exc
    raise AssertionError("no exception")


def _disk_full():
    # /dev/full answers every write with ENOSPC: the error a full store disk gives.
    with open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x")


def _overflow_numpy():
    with np.errstate(all="raise"):
        np.float32(3e38) * np.float32(10)


@pytest.mark.parametrize(
    ("call", "category", "reason"),
    [
        (
            lambda: json.loads("[" * 100_000 + "]" * 100_000),
            "FormatError",
            "could not be decoded: RecursionError:",
        ),
        (lambda: struct.unpack("<Q", b"abc"), "FormatError", "could not be decoded: error: unpack requires"),
        (lambda: b"\xff".decode(), "FormatError", "could not be decoded: UnicodeDecodeError:"),
        (lambda: zlib.decompress(b"nope"), "FormatError", "could not be decoded: error: Error -3"),
        (_overflow_numpy, "FingerprintError", "numeric error: FloatingPointError: overflow"),
        (lambda: bytearray(2**62), "ResourceLimit", "out of memory under the per-model cap (MemoryError)"),
        (lambda: {}["missing"], "internal", "KeyError: 'missing'"),
        (_disk_full, "ResourceLimit", "store disk full, retried by the next sweep (OSError: [Errno 28]"),
    ],
    ids=["recursion", "struct", "unicode", "zlib", "numpy", "memory", "bug", "disk-full"],
)
def test_any_exception_becomes_a_one_line_row_naming_model_and_file(call, category, reason):
    error = errors.from_exception(_raised(call), "org/m", "1a2b3c4d5e", "model.safetensors")
    assert error.category == category
    assert str(error).startswith(f"org/m@1a2b3c4:model.safetensors: {reason}")
    assert "\n" not in str(error) and len(error.reason) <= errors.MAX_REASON_CHARS


def test_a_hubscan_error_from_deep_in_a_stage_gets_model_and_file_filled_in():
    deep = errors.FetchError("", None, None, "HTTP 503", 503, (0, 8))
    error = errors.from_exception(deep, "org/m", "1a2b3c4d5e", "model.safetensors")
    assert (str(error), error.status, error.byte_range) == (
        "org/m@1a2b3c4:model.safetensors: HTTP 503",
        503,
        (0, 8),
    )


def test_the_permanent_failures_are_the_format_fingerprint_and_no_weights_classes():
    # a sweep never fetches these revisions again; a rate limit or a gate must stay retryable
    assert errors.permanent_categories() == {
        "FormatError", "MalformedHeader", "UnsupportedDtype", "UnsupportedFormat", "UnsafeContent",
        "FingerprintError", "NoWeights",
        "BadListing",  # a revision's file names are fixed by its commit: a bad one stays bad
    }  # fmt: skip
    assert not errors.RateLimited.permanent and not errors.RepoGated.permanent
    assert not errors.ResourceLimit.permanent and not errors.InternalError.permanent


def test_an_error_with_no_model_names_its_store_or_file_alone():
    assert str(errors.StoreError(None, None, "/data/stroe", "no such store")) == "/data/stroe: no such store"
    assert str(errors.QueryError(None, None, None, "no\nparams")) == "no params"
    back = pickle.loads(pickle.dumps(errors.NotComparable("a/x", "r1", None, "not in the store")))
    assert str(back) == "a/x@r1: not in the store"


def test_every_hubscan_error_class_is_defined_in_the_errors_module():
    import importlib
    import pkgutil

    import hubscan.jobs as jobs
    import hubscan.pipeline as pipeline

    outside = []
    for package in (pipeline, jobs):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                ours = isinstance(value, type) and issubclass(value, errors.HubscanError)
                if ours and value.__module__ != "hubscan.pipeline.errors":
                    outside.append(f"{value.__module__}.{value.__name__}")
    assert outside == []
