"""Scripted misbehaviour: the next N matching requests answer 429, 5xx, slowly, or cut the body short."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

# A plain 429 in a script tells the client to wait 1 s, like a Hub that is briefly over capacity.
DEFAULT_429_RETRY_AFTER = 1.0
# A "drip" step sends the body DRIP_BYTES at a time, one piece per DRIP_INTERVAL_S: each piece
# resets a client's read timeout, so only a total deadline per request stops it.
DRIP_BYTES = 1024
DRIP_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Fault:
    """One scripted answer. The defaults are a normal answer; set one or more fields to misbehave.

    status:      answer with this status and a JSON error body instead of the real response (200 = real response).
    retry_after: seconds for `Retry-After`, sent as a whole number rounded up as HTTP requires; None omits it.
    delay:       seconds to wait before answering (a "slow" step).
    cut:         send headers with the full Content-Length, then only `cut_after` body bytes (default: half),
                 then close the connection; the client sees a short body / protocol error.
    error_code:  `X-Error-Code` to send with a scripted error status (e.g. "GatedRepo").
    drip:        seconds to wait between DRIP_BYTES pieces of the body (a slow-drip server that
                 never trips an idle timeout).
    headers:     extra (name, value) headers sent with the answer, replacing the real ones of that
                 name: a looping or foreign `Link`, `Content-Encoding: gzip` over plain bytes, a
                 `RateLimit` reset of a billion seconds. A misbehaving mirror, scripted.
    body:        bytes sent instead of the real body (with status 200: a hostile listing page).
    """

    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    cut: bool = False
    cut_after: int | None = None
    error_code: str | None = None
    drip: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an HTTP status")
        if (self.cut or self.drip) and self.status != 200:
            raise ValueError("cut and drip only apply to a real (200/206) response")

    @classmethod
    def of(cls, step: Fault | int | str, slow_seconds: float) -> Fault:
        """A script step: a Fault, an int status (429 gets Retry-After: 1), "slow", "cut" or "ok"."""
        if isinstance(step, Fault):
            return step
        if isinstance(step, bool):  # bool is an int: refuse it rather than answer with status 1
            raise TypeError(f"unknown script step {step!r}")
        if isinstance(step, int):
            return cls(status=step, retry_after=DEFAULT_429_RETRY_AFTER if step == 429 else None)
        if step == "slow":
            return cls(delay=slow_seconds)
        if step == "cut":
            return cls(cut=True)
        if step == "drip":
            return cls(drip=DRIP_INTERVAL_S)
        if step == "ok":
            return cls()
        raise TypeError(
            f"unknown script step {step!r}: use a Fault, an int status, 'slow', 'cut', 'drip' or 'ok'"
        )

    def describe(self) -> str:
        """Short label for the request log, e.g. '429', 'slow', 'cut', '503+slow'."""
        parts = [] if self.status == 200 else [str(self.status)]
        parts += ["slow"] * (self.delay > 0) + ["cut"] * self.cut + ["drip"] * (self.drip > 0)
        parts += ["headers"] * bool(self.headers) + ["body"] * (self.body is not None)
        return "+".join(parts) or "ok"


@dataclass
class _Script:
    pattern: str
    steps: deque[Fault]
    method: str | None
    repo_id: str | None
    origin: str | None = None


class ScriptBook:
    """Registered scripts; the first script that matches a request and still has steps gives the next one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: list[_Script] = []

    def add(
        self,
        pattern: str,
        steps: Iterable[Fault | int | str],
        *,
        slow_seconds: float,
        method: str | None = None,
        repo_id: str | None = None,
        origin: str | None = None,
    ) -> None:
        """Queue steps for requests whose target matches the fnmatch pattern (and method / repo / origin, if given)."""
        faults = deque(Fault.of(s, slow_seconds) for s in steps)
        with self._lock:
            self._scripts.append(
                _Script(pattern, faults, method.upper() if method else None, repo_id, origin)
            )

    def take(self, method: str, target: str, repo_id: str | None, origin: str = "hub") -> Fault | None:
        """Pop the next step for this request, or None when no script applies."""
        with self._lock:
            for script in self._scripts:
                if not script.steps or not fnmatchcase(target, script.pattern):
                    continue
                if script.method not in (None, method) or script.repo_id not in (None, repo_id):
                    continue
                if script.origin not in (None, origin):
                    continue
                return script.steps.popleft()
        return None

    def pending(self) -> int:
        """Steps not yet consumed, so a test can check that its faults were actually hit."""
        with self._lock:
            return sum(len(s.steps) for s in self._scripts)

    def clear(self) -> None:
        """Drop every script."""
        with self._lock:
            self._scripts.clear()
