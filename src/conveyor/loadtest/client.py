"""A minimal asyncio HTTP/1.1 keep-alive client, made for generating load.

Requests are encoded to bytes once, before the test, and a connection carries one request at
a time (no pipelining). A response is framed by ``Content-Length``, by chunked encoding, or
by the end of the connection; its body is read and dropped, only the status is kept. General
clients (httpx, aiohttp) build a request object, headers and a response per call and cost
several times more CPU per request, which would make the generator the bottleneck of the test.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from conveyor.errors import UsageError


class RequestTimeout(Exception):
    """No complete response within the request timeout; the connection was dropped."""


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.x response."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where requests go: a plain-HTTP host, port and path."""

    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    @classmethod
    def parse(cls, url: str, *, default_path: str = "/invocations") -> Endpoint:
        """``http://host:port/path``; the path defaults to ``default_path``."""
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise UsageError(
                f"'{url}' is not a plain-HTTP URL",
                hint="load-test the service on its http:// port (TLS is not supported), "
                "e.g. http://127.0.0.1:8080/invocations",
            )
        try:
            port = parts.port or 80
        except ValueError:
            raise UsageError(f"'{url}' has an invalid port") from None
        if not parts.hostname:
            raise UsageError(f"'{url}' names no host", hint="e.g. http://127.0.0.1:8080")
        path = parts.path if parts.path not in ("", "/") else default_path
        if parts.query:
            path = f"{path}?{parts.query}"
        return cls(host=parts.hostname, port=port, path=path)


def encode_request(endpoint: Endpoint, body: bytes, *, method: str = "POST") -> bytes:
    """One complete HTTP/1.1 request (head and body) as bytes, ready to write."""
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    head = (
        f"{method} {endpoint.path} HTTP/1.1\r\n"
        f"Host: {host}:{endpoint.port}\r\n"
        "User-Agent: conveyor-loadtest\r\n"
        "Accept: application/json\r\n"
        + ("Content-Type: application/json\r\n" if body or method == "POST" else "")
        + (f"Content-Length: {len(body)}\r\n" if body or method == "POST" else "")
        + "\r\n"
    )
    return head.encode("ascii") + body


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.sent_at = 0.0  # perf_counter() of the request in flight, 0.0 when idle
        self._buf = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._status = 0
        self._body_left = -1  # bytes of body still expected; -1 while reading the head
        self._chunked = False
        self._until_close = False
        self._close_after = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is None:
            self._fail(ProtocolError("bytes arrived with no request in flight"))
            return
        try:
            done = self._parse()
        except (ValueError, ProtocolError) as exc:
            self._fail(exc if isinstance(exc, ProtocolError) else ProtocolError(str(exc)))
            return
        if done:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and self._until_close and exc is None:
            self._finish()
            return
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    # -- the request -----------------------------------------------------------------------

    def request(self, data: bytes, sent_at: float) -> asyncio.Future[int]:
        """Write a pre-encoded request; the future resolves to the response's status."""
        assert self.transport is not None and self._waiter is None
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.sent_at = sent_at
        self.transport.write(data)
        return waiter

    def abort(self, exc: Exception) -> None:
        """Drop the connection, failing the request in flight with ``exc``."""
        self._fail(exc)

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        self.sent_at = 0.0
        self._body_left = -1
        if self._close_after or self._until_close:
            self._close()
        if waiter is not None and not waiter.done():
            waiter.set_result(self._status)

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        self.sent_at = 0.0
        self._close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- parsing ---------------------------------------------------------------------------

    def _parse(self) -> bool:
        """Consume what is buffered; True once the whole response is in."""
        buf = self._buf
        if self._body_left < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    raise ProtocolError("response head larger than 64 KiB")
                return False
            self._read_head(bytes(buf[:end]).lower())
            del buf[: end + 4]
        if self._until_close:
            buf.clear()
            return False
        if self._chunked:
            return self._read_chunks()
        if len(buf) < self._body_left:
            self._body_left -= len(buf)
            buf.clear()
            return False
        if len(buf) > self._body_left:
            raise ProtocolError("more bytes than the response's Content-Length")
        buf.clear()
        return True

    def _read_head(self, head: bytes) -> None:
        if not head.startswith(b"http/1.") or len(head) < 12:
            raise ProtocolError(f"not an HTTP/1.x response: {head[:40]!r}")
        self._status = int(head[9:12])
        self._close_after = b"\r\nconnection: close" in head or head.startswith(b"http/1.0")
        self._chunked = False
        self._until_close = False
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            line_end = head.find(b"\r\n", at + 2)
            self._body_left = int(head[at + 17 : line_end if line_end >= 0 else None])
        elif b"\r\ntransfer-encoding:" in head and b"chunked" in head:
            self._chunked = True
            self._body_left = 0
        elif self._status in (204, 304) or 100 <= self._status < 200:
            self._body_left = 0
        else:
            self._until_close = True
            self._body_left = 0

    def _read_chunks(self) -> bool:
        buf = self._buf
        while True:
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return False
            size = int(bytes(buf[:line_end]).split(b";", 1)[0], 16)
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", line_end)
                if buf[line_end : line_end + 4] == b"\r\n\r\n" or trailer_end >= 0:
                    buf.clear()
                    return True
                return False
            if len(buf) < line_end + 2 + size + 2:
                return False
            del buf[: line_end + 2 + size + 2]


async def connect(endpoint: Endpoint, timeout: float) -> Connection:
    """Open one connection (asyncio sets TCP_NODELAY on it, so small writes go out at once)."""
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(Connection, endpoint.host, endpoint.port), timeout
    )
    return conn


def error_kind(exc: BaseException) -> str:
    """A short, stable name for a failed request, used as a key in the report."""
    if isinstance(exc, RequestTimeout | TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "connection reset"
    if isinstance(exc, ProtocolError):
        return "protocol error"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, OSError):
        return f"connection error ({exc.strerror or type(exc).__name__})"
    return type(exc).__name__


async def get_status(endpoint: Endpoint, path: str, timeout: float) -> int:
    """The status of one GET (a readiness probe); raises OSError when nothing answers."""
    probe = Endpoint(host=endpoint.host, port=endpoint.port, path=path)
    conn = await connect(probe, timeout)
    try:
        return await asyncio.wait_for(
            conn.request(encode_request(probe, b"", method="GET"), time.perf_counter()), timeout
        )
    finally:
        conn.abort(ConnectionAbortedError("probe done"))
