"""Per-model time and memory budgets inside a sweep's Ray task.

A thread cannot be killed, so the time budget is a SIGALRM in the task's own (main) thread:
it raises ``ModelTimeout`` between bytecodes, the model is recorded and the worker lives on.
Code stuck inside one C call never sees the signal; for that the driver cancels the task
with ``ray.cancel(force=True)`` after a hard deadline (pipeline/runtime/sweep.py). The memory cap is
RLIMIT_DATA raised to the worker's current data size plus the cap: an allocation past it
fails with MemoryError in the task instead of the kernel OOM-killing the node's processes.
RLIMIT_AS would not do: Ray maps gigabytes of address space (object store, thread stacks)
that are never touched, so an address-space cap breaks the worker itself.
"""

from __future__ import annotations

import resource
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from hubscan.pipeline.errors import HubscanError, ResourceLimit, from_exception


# A BaseException, like KeyboardInterrupt: no ``except Exception`` in the readers may swallow it.
class ModelTimeout(BaseException):
    """The per-model time budget ran out (raised from SIGALRM in the task's thread)."""


class _Expiry:
    """Set when the alarm fired: a signal raised inside a C call that calls back into Python
    surfaces as SystemError (or whatever that C code makes of it), not as ModelTimeout."""

    message = ""


_expired = _Expiry()


@contextmanager
def model_budget(seconds: float | None, memory_bytes: int | None) -> Iterator[None]:
    """Run the body under a time budget (ModelTimeout) and a memory cap (MemoryError); both undone after."""
    with _time_budget(seconds), _memory_cap(memory_bytes):
        yield


@contextmanager
def _time_budget(seconds: float | None) -> Iterator[None]:
    # Signals reach only the main thread; elsewhere (a test calling the task in a thread)
    # the driver's hard deadline is the only budget.
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        _expired.message = f"exceeded the {seconds:g} s per-model budget"
        raise ModelTimeout(_expired.message)

    _expired.message = ""
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _memory_cap(memory_bytes: int | None) -> Iterator[None]:
    if not memory_bytes:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = data_bytes() + memory_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def data_bytes() -> int:
    """This process's data segment (VmData: heap and private anonymous mappings), which RLIMIT_DATA caps."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def as_failure(exc: BaseException, repo_id: str, revision: str | None, filename: str | None) -> HubscanError:
    """Any exception from one model's work as the HubscanError its failures row records."""
    if isinstance(exc, ModelTimeout) or (_expired.message and not isinstance(exc, HubscanError)):
        return ResourceLimit(repo_id, revision, filename, _expired.message or str(exc))
    return from_exception(exc, repo_id, revision, filename)


@contextmanager
def blame(repo_id: str, revision: str | None, filename: str | None) -> Iterator[None]:
    """Whatever the body raises leaves as a HubscanError naming this model and file."""
    try:
        yield
    except (Exception, ModelTimeout) as exc:
        raise as_failure(exc, repo_id, revision, filename) from exc
