"""Errors cross process boundaries (Ray pickles them) and always read as one line naming model and file."""

import pickle

import pytest

from pipeline import errors

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
    assert back.category == cls.__name__


def test_message_is_one_line_naming_model_revision_and_file():
    exc = errors.MalformedHeader(
        "org/model", "1a2b3c4d5e", "model.safetensors", "header length\n  9000000000 exceeds 100000000"
    )
    assert str(exc) == "org/model@1a2b3c4:model.safetensors: header length 9000000000 exceeds 100000000"


def test_fetch_error_keeps_status_and_range_across_pickle():
    exc = errors.RateLimited("org/m", "abc", "f.safetensors", "HTTP 429", 429, (0, 100))
    back = pickle.loads(pickle.dumps(exc))
    assert (back.status, back.byte_range) == (429, (0, 100))
