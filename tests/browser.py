"""Pages as a reader sees them: headless Chromium opens a file from disk with networking off, and its
screenshot, rendered DOM and console say what a person would see. Skips when Chromium is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
# Every flag Chromium needs to run headless here without reaching any network service.
OFFLINE = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
           "--v=0"]  # fmt: skip
# A rendered page's PNG against a blank page's of the same size: text and figures compress far worse.
MIN_SCREENSHOT_RATIO = 10


@dataclass(frozen=True)
class Seen:
    """A page as Chromium rendered it."""

    dom: str
    screenshot_bytes: int
    console: str  # console messages and failed loads; empty for a page that needs nothing it lacks

    def text(self) -> str:
        """The rendered text, tags dropped and whitespace collapsed."""
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", self.dom))


def chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Chromium run headless and offline on ``url``, with a fresh profile under ``tmp_path``."""
    if CHROMIUM is None:
        pytest.skip("chromium not installed (.ci/run installs it with apt-get)")
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [CHROMIUM, *OFFLINE, f"--user-data-dir={profile}", "--window-size=1200,1600", *extra, url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def seen(tmp_path: Path, page: Path) -> Seen:
    """The rendered DOM, screenshot size and console lines of a page opened from disk."""
    dom = chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp_path / f"{page.stem}.png"
    run = chromium(tmp_path, page.as_uri(), f"--screenshot={shot}")
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    console = "\n".join(line for line in dom.stderr.splitlines() + run.stderr.splitlines()
                        if "CONSOLE" in line or "net::ERR" in line or "Failed to load" in line)  # fmt: skip
    return Seen(dom.stdout, shot.stat().st_size, console)


def blank_size(tmp_path: Path) -> int:
    """Screenshot bytes of an empty page at the same window size: what a page that shows nothing weighs."""
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    shot = tmp_path / "blank.png"
    chromium(tmp_path, blank.as_uri(), f"--screenshot={shot}")
    return shot.stat().st_size


def looks_rendered(tmp_path: Path, page: Path) -> Seen:
    """The page, asserted to show something (not a blank screenshot) and to need nothing it lacks."""
    shown = seen(tmp_path, page)
    assert shown.screenshot_bytes > MIN_SCREENSHOT_RATIO * blank_size(tmp_path), "screenshot looks blank"
    assert shown.console == "", shown.console
    return shown
