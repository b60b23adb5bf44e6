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
from .cdn import MULTIRANGE_MODES, SIGNED_URL_TTL_S, parse_cdn_path, signed_path
from .cdn import serve as serve_cdn
from .faults import DRIP_BYTES, Fault, ScriptBook
from .repos import RepoFile, RepoStore
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
    origin = "hub"  # or "cdn": the second origin signed URLs point at

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
        origin = self.server.origin
        target = routes.parse_target(url.path) if origin == "hub" else _cdn_target(url.path)
        hub.log.begin()  # only once nothing can raise before the finally that records it
        bucket = "resolvers" if target.kind == "resolve" else "api"
        fault: Fault | None = None
        status, error = 0, None
        try:
            if hub.latency > 0:
                time.sleep(hub.latency)
            # The CDN origin is in none of the Hub's buckets and sends no RateLimit headers.
            allowed, limit_headers = hub._limiter.hit(bucket) if origin == "hub" else (True, {})
            if not allowed:
                reply = error_reply(429, f"You have exceeded your '{bucket}' rate limit", None, limit_headers)
            else:
                match_on = target.filename if target.kind in ("resolve", "cdn") else url.path
                fault = hub._scripts.take(method, match_on or "", target.repo_id, origin)
                if fault is not None and fault.delay > 0:
                    time.sleep(fault.delay)
                reply = (
                    self._scripted(fault) if fault and fault.status != 200 else self._route(target, url.query)
                )
            reply.headers.update(limit_headers)
            if fault is not None:
                _rewrite(reply, fault)  # last, so a scripted header replaces the real one
            status = reply.status
            self._drip = fault.drip if fault is not None else 0.0
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
                filename=target.filename if target.kind in ("resolve", "cdn") else None,
                range=self.headers.get("Range"),
                status=status,
                bytes_sent=self._sent,
                time=started,
                duration=time.time() - started,
                fault=fault.describe() if fault is not None else None,
                error=error,
                origin=origin,
                authorization="Authorization" in self.headers,
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
        if self.server.origin == "cdn":
            path = urlsplit(self.path).path
            return serve_cdn(
                hub.store,
                path,
                query,
                self.headers.get("Range"),
                multirange=hub.multirange,
                ignore_range=hub.ignore_range,
            )
        if target.kind == "list":
            return routes.list_models(
                hub.store,
                query,
                base_url=self._base_url(),
                page_size=hub.page_size,
                synthetic=hub.synthetic_models,
                caller=caller,
                extra=hub.listing_extra,
            )
        if target.kind == "info":
            return routes.model_info(hub.store, target, query, caller)
        if target.kind == "tree":
            return routes.tree(hub.store, target, query, caller)
        if target.kind == "resolve":
            return routes.resolve(
                hub.store,
                target,
                self.headers.get("Range"),
                caller,
                self._base_url(),
                redirect_to=hub._signed_url if hub.cdn else None,
                ignore_range=hub.ignore_range,
            )
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
                for piece in reply.spans():
                    if not self._write_piece(f, piece, budget):
                        break
        self.wfile.flush()

    def _write_piece(self, f: Any, piece: bytes | tuple[int, int], budget: int) -> bool:
        """Write literal bytes or a file span up to the body budget; False once the budget is spent."""
        if isinstance(piece, bytes):
            part = piece[: max(0, budget - self._sent)]
            self.wfile.write(part)
            self._sent += len(part)
            return self._sent < budget
        start, length = piece
        f.seek(start)
        stop = min(budget, self._sent + length)
        piece_size = DRIP_BYTES if self._drip else CHUNK_SIZE
        while self._sent < stop:
            if self._drip:
                self.wfile.flush()
                time.sleep(self._drip)
            chunk = f.read(min(piece_size, stop - self._sent))
            if not chunk:  # file shrank under us: the client sees a short body
                self.close_connection = True
                return False
            self.wfile.write(chunk)
            self._sent += len(chunk)
        return self._sent < budget


def _rewrite(reply: Reply, fault: Fault) -> None:
    """Put a fault's own headers and body on the answer (a misbehaving server's, not the Hub's)."""
    for name, value in fault.headers:
        for old in [k for k in reply.headers if k.lower() == name.lower()]:
            del reply.headers[old]
        reply.headers[name] = value
    if fault.body is not None:
        reply.body, reply.file, reply.pieces = fault.body, None, ()


def _cdn_target(path: str) -> Target:
    """A CDN path as a resolve target, so the log names repo and file for both origins."""
    parsed = parse_cdn_path(path)
    if parsed is None:
        return Target("unknown")
    return Target("cdn", parsed[0], parsed[1], parsed[2])


class FakeHub:
    """Serves ROOT/<org>/<name>/ repos through the Hub's HTTP API on 127.0.0.1, with faults and a request log.

    In the Hub's shape (``cdn=True``) `/resolve/` of an LFS file answers 302 to a signed URL on a
    second origin, `http://localhost:PORT2/cdn/...`, that expires after ``signed_ttl`` seconds;
    small files are answered directly. ``cdn=False`` serves every file from `/resolve/` itself,
    like a plain mirror. Settings given here are restored by reset(); between tests change them
    as attributes (latency, page_size, synthetic_models, slow_seconds, signed_ttl, multirange
    in MULTIRANGE_MODES, ignore_range, listing_extra) or with set_quota(). ``listing_extra`` holds
    raw JSON entries (any shape: a mirror's broken or hostile ones) added to the listing's first page.
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
        cdn: bool = True,
        signed_ttl: float = SIGNED_URL_TTL_S,
        multirange: str = "multipart",
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotADirectoryError(f"fakehub root {self.root} is not a directory")
        self.store = RepoStore(self.root)
        self.tokens = frozenset(tokens)
        self.log = RequestLog()
        self._port = port
        if multirange not in MULTIRANGE_MODES:
            raise ValueError(f"multirange must be one of {MULTIRANGE_MODES}")
        self.cdn = cdn
        self._defaults = (page_size, synthetic_models, latency, slow_seconds, dict(quota or {}), window)
        self._cdn_defaults = (signed_ttl, multirange)
        self._scripts = ScriptBook()
        self._server: _Server | None = None
        self._cdn_server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self.reset()

    @property
    def url(self) -> str:
        """Endpoint to pass as HfApi(endpoint=...) / hf_hub_download(endpoint=...)."""
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def cdn_url(self) -> str:
        """Origin of the signed URLs: another host name than url's, so clients treat it as foreign."""
        if self._cdn_server is None:
            raise RuntimeError("FakeHub has no CDN origin (cdn=False) or is not started")
        return f"http://localhost:{self._cdn_server.server_address[1]}"

    def start(self) -> FakeHub:
        """Bind and serve in daemon threads (the Hub, and its CDN origin when cdn=True); returns self."""
        if self._server is not None:
            return self
        self._server = self._serve(self._port, "hub")
        if self.cdn:
            self._cdn_server = self._serve(0, "cdn")
        return self

    def _serve(self, port: int, origin: str) -> _Server:
        server = _Server(("127.0.0.1", port), _Handler)
        server.hub, server.origin = self, origin
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fakehub-{origin}", daemon=True
        )
        thread.start()
        self._threads.append(thread)
        return server

    def stop(self) -> None:
        """Stop serving and close the listening sockets."""
        for server in (self._server, self._cdn_server):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server, self._cdn_server, self._threads = None, None, []

    def _signed_url(self, repo_id: str, sha: str, f: RepoFile) -> str:
        """Where `/resolve/` redirects an LFS file: a signed CDN URL valid for signed_ttl seconds."""
        return self.cdn_url + signed_path(repo_id, sha, f.rfilename, self.signed_ttl)

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
        origin: str | None = None,
    ) -> None:
        """The next requests matching `pattern` take `steps` in order, then behave normally.

        The pattern (fnmatch) is matched against the repo-relative file path for resolve and CDN requests
        and the URL path otherwise; ``origin`` ("hub" or "cdn") limits the script to one server. A step is a
        Fault, an int status (429 sends Retry-After: 1), "slow", "cut" or "ok".
        """
        self._scripts.add(
            pattern, steps, slow_seconds=self.slow_seconds, method=method, repo_id=repo_id, origin=origin
        )

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
        self.signed_ttl, self.multirange = self._cdn_defaults
        self.ignore_range = False
        self.listing_extra: list[Any] = []
        self._scripts.clear()
        self.log.clear()
        self.set_quota(quota, window)
