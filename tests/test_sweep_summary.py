"""The sweep's closing summary: a whole-hub projection only from quota-counted requests."""

from typer.testing import CliRunner

from hubscan.jobs.cli import app
from hubscan.pipeline.config import Settings
from hubscan.pipeline.request_counts import RequestCounts
from hubscan.pipeline.runtime import sweep
from hubscan.pipeline.runtime.sweep_progress import SweepProgress
from hubscan.testbed.demohub.small_repos import main as write_small_repos


def test_a_local_sweep_prints_no_whole_hub_projection(ray_session, tmp_path):
    write_small_repos(tmp_path / "repos")
    args = ["sweep", "--source", f"local:{tmp_path / 'repos'}", "--store", str(tmp_path / "store")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "requests per model" in result.stderr
    assert "whole-hub sweep" not in result.stderr
    assert "by account" not in result.stderr


def test_a_sweep_with_quota_counted_requests_prints_its_projection(capsys):
    state = sweep.SweepState(
        "sweep-x",
        "hub",
        sweep.ListingFilters(),
        done=4,
        counts=RequestCounts(api_requests=4, resolver_requests=8),
    )
    SweepProgress(state, total=4).summary(sweep._projection(state, Settings()))
    err = capsys.readouterr().err
    assert "whole-hub sweep" in err
    assert "anonymous" in err
