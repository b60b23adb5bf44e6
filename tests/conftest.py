"""Session fixtures: the testbed of real checkpoints and variants, served by the fake Hub on 127.0.0.1.

HF_ENDPOINT must be set before huggingface_hub is first imported (it reads it at import);
it points at a closed local port so nothing can ever reach the real Hub, and every test
passes the fake Hub's URL explicitly.
"""

import os

os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import json
from pathlib import Path

import pytest

from hubscan.pipeline.config import Settings
from hubscan.testbed.demohub.realmodels import default_cache
from hubscan.testbed.demohub.testbed import build_testbed
from hubscan.testbed.fakehub import FakeHub
from tests.real_checkpoints import real_model, unavailable


@pytest.fixture(scope="session")
def testbed(tmp_path_factory) -> Path:
    """A folder of HF-layout repos: real checkpoints, derived variants and bad inputs."""
    real_model("minilm-l6")
    root = tmp_path_factory.mktemp("testbed")
    build_testbed(root, default_cache())
    skipped = json.loads((root / "skipped.json").read_text())
    if skipped and os.environ.get("CI"):  # else every test of a missing repo would skip
        unavailable(f"testbed repos not built: {skipped}")
    return root


@pytest.fixture(scope="session")
def _hub_server(testbed):
    with FakeHub(testbed) as hub:
        yield hub


@pytest.fixture
def hub(_hub_server) -> FakeHub:
    """The session's fake Hub, reset (no scripts, empty log) for each test."""
    _hub_server.reset()
    yield _hub_server
    _hub_server.reset()


@pytest.fixture
def settings(hub, tmp_path) -> Settings:
    """Settings pointed at the fake Hub, with a fresh store and fast retries."""
    return Settings(endpoint=hub.url, store=tmp_path / "store", backoff_base_s=0.01, backoff_max_s=0.05)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (start-up costs seconds)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
