"""FakeHub: a threaded HTTP server that answers like the Hugging Face Hub from a folder of repos."""

from __future__ import annotations

import contextlib
import math
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from . import routes
from .faults import Fault, ScriptBook
from .repos import RepoStore
from .routes import Caller, Reply, Target, error_reply
from .traffic import HUB_WINDOW_SECONDS, RateLimiter, RequestLog, RequestRecord

# 256 KiB writes keep a multi-GB file out of memory while staying cheap in syscalls.
CHUNK_SIZE = 256 * 1024
# Drop idle keep-alive connections after this long so abandoned clients do not pin threads.
IDLE_TIMEOUT = 60.0
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout)


class _Server(ThreadingHTTPServer):
    """Daemon handler threads and reusable ports, so a test session never waits on a lingering client."""

    daemon_threads = True
    allow_reuse_address = True
    hub: FakeHub

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are normal traffic; anything else is a bug in the fake and is printed."""
        if not isinstance(sys.exc_info()[1], (*_DISCONNECTS, ConnectionError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One connection; every request goes through _handle so it is rate-limited, scripted and logged."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the Hub, so clients reuse connections
    server_version = "fakehub"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = (
        True  # headers and a small body go out in two writes: Nagle + delayed ACK adds 40 ms
    )
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is hub.log, not stderr."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def _handle(self, method: str) -> None:
        hub = self.server.hub
        started, self._sent, self._headers_done = time.time(), 0, False
        url = urlsplit(self.path)
        target = routes.parse_target(url.path)
        hub.log.begin()  # only once nothing can raise before the finally that records it
        bucket = "resolvers" if target.kind == "resolve" else "api"
        fault: Fault | None = None
        status, error = 0, None
        try:
            if hub.latency > 0:
                time.sleep(hub.latency)
            allowed, limit_headers = hub._limiter.hit(bucket)
            if not allowed:
                reply = error_reply(429, f"You have exceeded your '{bucket}' rate limit", None, limit_headers)
            else:
                match_on = target.filename if target.kind == "resolve" else url.path
                fault = hub._scripts.take(method, match_on or "", target.repo_id)
                if fault is not None and fault.delay > 0:
                    time.sleep(fault.delay)
                reply = (
                    self._scripted(fault) if fault and fault.status != 200 else self._route(target, url.query)
                )
            reply.headers.update(limit_headers)
            status = reply.status
            self._send(reply, method, fault if fault is not None and fault.cut else None)
        except _DISCONNECTS as e:
            error, self.close_connection = f"client went away: {e!r}", True
        except Exception as e:  # a bug in the fake: answer 500 if we still can, and say so loudly
            error, self.close_connection = repr(e), True
            traceback.print_exc()
            if not self._headers_done:
                status = 500
                with contextlib.suppress(*_DISCONNECTS):
                    self._send(error_reply(500, f"fakehub bug: {e!r}"), method, None)
        finally:
            record = RequestRecord(
                method=method,
                path=url.path,
                query=url.query,
                repo_id=target.repo_id,
                filename=target.filename if target.kind == "resolve" else None,
                range=self.headers.get("Range"),
                status=status,
                bytes_sent=self._sent,
                time=started,
                duration=time.time() - started,
                fault=fault.describe() if fault is not None else None,
                error=error,
            )
            hub.log.end(record)

    def _caller(self) -> Caller:
        auth = self.headers.get("Authorization") or ""
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        return Caller(token=token or None, granted=bool(token) and token in self.server.hub.tokens)

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.server.hub.url

    def _route(self, target: Target, query: str) -> Reply:
        hub, caller = self.server.hub, self._caller()
        if target.kind == "list":
            return routes.list_models(
                hub.store,
                query,
                base_url=self._base_url(),
                page_size=hub.page_size,
                synthetic=hub.synthetic_models,
                caller=caller,
            )
        if target.kind == "info":
            return routes.model_info(hub.store, target, query, caller)
        if target.kind == "tree":
            return routes.tree(hub.store, target, query, caller)
        if target.kind == "resolve":
            return routes.resolve(hub.store, target, self.headers.get("Range"), caller, self._base_url())
        return error_reply(404, "Not Found")

    @staticmethod
    def _scripted(fault: Fault) -> Reply:
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(fault.retry_after))  # HTTP allows whole seconds only
        return error_reply(fault.status, f"fakehub scripted fault: {fault.status}", fault.error_code, headers)

    def _send(self, reply: Reply, method: str, cut: Fault | None) -> None:
        """Write status, headers and (for GET) the body; a cut sends part of the body and closes."""
        length = reply.content_length
        self.send_response(reply.status)
        self.send_header("Content-Length", str(length))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self._headers_done = True
        if method == "HEAD":
            return
        budget = length
        if cut is not None:
            budget = min(length // 2 if cut.cut_after is None else cut.cut_after, length)
            self.close_connection = True  # the client must see EOF before Content-Length is reached
        if reply.file is None:
            self.wfile.write(reply.body[:budget])
            self._sent = budget
        else:
            with reply.file.open("rb") as f:
                f.seek(reply.start)
                while self._sent < budget:
                    chunk = f.read(min(CHUNK_SIZE, budget - self._sent))
                    if not chunk:  # file shrank under us: the client sees a short body
                        self.close_connection = True
                        break
                    self.wfile.write(chunk)
                    self._sent += len(chunk)
        self.wfile.flush()


class FakeHub:
    """Serves ROOT/<org>/<name>/ repos through the Hub's HTTP API on 127.0.0.1, with faults and a request log.

    Settings given here are restored by reset(); between tests change them as attributes
    (latency, page_size, synthetic_models, slow_seconds) or with set_quota().
    """

    def __init__(
        self,
        root: Path | str,
        *,
        port: int = 0,
        page_size: int = 100,
        synthetic_models: int = 0,
        latency: float = 0.0,
        slow_seconds: float = 1.0,
        quota: Mapping[str, int] | None = None,
        window: float = HUB_WINDOW_SECONDS,
        tokens: Iterable[str] = (),
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotADirectoryError(f"fakehub root {self.root} is not a directory")
        self.store = RepoStore(self.root)
        self.tokens = frozenset(tokens)
        self.log = RequestLog()
        self._port = port
        self._defaults = (page_size, synthetic_models, latency, slow_seconds, dict(quota or {}), window)
        self._scripts = ScriptBook()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    @property
    def url(self) -> str:
        """Endpoint to pass as HfApi(endpoint=...) / hf_hub_download(endpoint=...)."""
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeHub:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.hub = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fakehub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def script(
        self,
        pattern: str,
        steps: Iterable[Fault | int | str],
        *,
        method: str | None = None,
        repo_id: str | None = None,
    ) -> None:
        """The next requests matching `pattern` take `steps` in order, then behave normally.

        The pattern (fnmatch) is matched against the repo-relative file path for resolve requests and the
        URL path otherwise. A step is a Fault, an int status (429 sends Retry-After: 1), "slow", "cut" or "ok".
        """
        self._scripts.add(pattern, steps, slow_seconds=self.slow_seconds, method=method, repo_id=repo_id)

    def pending_steps(self) -> int:
        """Scripted steps not yet consumed by a request."""
        return self._scripts.pending()

    def set_quota(self, quota: Mapping[str, int] | None, window: float = HUB_WINDOW_SECONDS) -> None:
        """Enforce per-window quotas ({"api": n, "resolvers": m}) with fresh counters; None stops enforcing."""
        self._limiter = RateLimiter(quota, window)

    def reset(self) -> None:
        """Back to the constructor's settings: no scripts, empty log, fresh rate-limit counters."""
        page_size, synthetic, latency, slow, quota, window = self._defaults
        self.page_size, self.synthetic_models = page_size, synthetic
        self.latency, self.slow_seconds = latency, slow
        self._scripts.clear()
        self.log.clear()
        self.set_quota(quota, window)
