"""The response framing of the load generator's client, fed bytes as a socket would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from conveyor.errors import UsageError
from conveyor.loadtest.client import (
    Connection,
    Endpoint,
    ProtocolError,
    RequestTimeout,
    encode_request,
    error_kind,
)


class FakeTransport(asyncio.Transport):
    """Records what the client writes; aborting reports the connection lost."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn
        self.written = b""
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def abort(self) -> None:
        if not self.aborted:
            self.aborted = True
            self.conn.connection_lost(None)


def exchange(pieces: list[bytes], *, then: Callable[[Connection], None] | None = None) -> object:
    """Send one request, feed the response in ``pieces``; the status or the exception."""

    async def go() -> object:
        conn = Connection()
        transport = FakeTransport(conn)
        conn.connection_made(transport)
        waiter = conn.request(b"POST / HTTP/1.1\r\n\r\n", 1.0)
        for piece in pieces:
            conn.data_received(piece)
        if then is not None:
            then(conn)
        try:
            status = await asyncio.wait_for(waiter, 1)
        except Exception as exc:
            return exc
        return status, conn.closed, conn.sent_at

    return asyncio.run(go())


def test_content_length_split_anywhere_completes_once_and_keeps_the_connection() -> None:
    response = b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"x": [1, 2]}'
    for cut in range(1, len(response)):
        assert exchange([response[:cut], response[cut:]]) == (200, False, 0.0)


def test_chunked_body_and_error_status() -> None:
    response = (
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    )
    assert exchange([response]) == (503, False, 0.0)
    assert exchange([response[:60], response[60:75], response[75:]]) == (503, False, 0.0)


def test_connection_close_and_http_1_0_close_after_the_response() -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    assert exchange([close]) == (200, True, 0.0)
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert exchange([old]) == (200, True, 0.0)


def test_a_body_read_until_the_server_closes() -> None:
    result = exchange([b"HTTP/1.1 200 OK\r\n\r\nsome body"], then=lambda c: c.connection_lost(None))
    assert result == (200, True, 0.0)


def test_no_content_has_no_body() -> None:
    assert exchange([b"HTTP/1.1 204 No Content\r\n\r\n"]) == (204, False, 0.0)


def test_garbage_and_extra_bytes_are_protocol_errors() -> None:
    assert isinstance(exchange([b"SSH-2.0-OpenSSH\r\n\r\n"]), ProtocolError)
    too_long = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy"
    assert isinstance(exchange([too_long]), ProtocolError)


def test_a_reset_fails_the_request_in_flight() -> None:
    failed = exchange(
        [b"HTTP/1.1 200 OK\r\nContent-Len"],
        then=lambda c: c.connection_lost(ConnectionResetError("reset by peer")),
    )
    assert isinstance(failed, ConnectionResetError)
    assert error_kind(failed) == "connection reset"


def test_abort_fails_with_the_reason_given() -> None:
    failed = exchange([], then=lambda c: c.abort(RequestTimeout("no response within 1 s")))
    assert isinstance(failed, RequestTimeout) and error_kind(failed) == "timeout"


def test_error_kinds_are_short_and_stable() -> None:
    assert error_kind(ConnectionRefusedError()) == "connection refused"
    assert error_kind(TimeoutError()) == "timeout"
    assert error_kind(OSError(113, "No route to host")) == "connection error (No route to host)"


def test_requests_are_complete_http_1_1_with_a_content_length() -> None:
    endpoint = Endpoint.parse("http://127.0.0.1:28601/invocations")
    data = encode_request(endpoint, b'{"a":1}')
    head, body = data.split(b"\r\n\r\n")
    assert head.startswith(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:28601\r\n")
    assert b"Content-Length: 7" in head and b"Content-Type: application/json" in head
    assert body == b'{"a":1}'


@pytest.mark.parametrize(
    ("url", "host", "port", "path"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1", 8080, "/invocations"),
        ("http://localhost/v2/models/m/infer", "localhost", 80, "/v2/models/m/infer"),
        ("http://[::1]:9000/invocations?x=1", "::1", 9000, "/invocations?x=1"),
    ],
)
def test_endpoint_urls(url: str, host: str, port: int, path: str) -> None:
    endpoint = Endpoint.parse(url)
    assert (endpoint.host, endpoint.port, endpoint.path) == (host, port, path)


@pytest.mark.parametrize("url", ["https://example.com/x", "http://:80/x", "http://h:99999/"])
def test_unusable_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        Endpoint.parse(url)
