"""CoalescingTransport: a connection's writes of one loop turn go out as one."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from conveyor.serve.http import CoalescingTransport, HttpProtocol
from conveyor.serve.run import uvicorn_options


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1234)}.get(name, default)


def test_the_writes_of_one_loop_turn_are_sent_once_joined_at_its_end() -> None:
    async def main() -> None:
        real = Recording()
        transport = CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(memoryview(b"{}"))
        assert real.writes == []  # nothing sent while the turn runs
        assert transport.get_write_buffer_size() == 40
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        transport.write(b"next")
        await asyncio.sleep(0)
        assert real.writes[1:] == [b"next"]  # a later turn: its own send
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)

    asyncio.run(main())


def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        real = Recording()
        transport = CoalescingTransport(real, loop)
        transport.write(b"head")
        transport.write(b"body")
        transport.close()
        assert real.events == ["write", "close"]
        assert real.writes == [b"headbody"]
        await asyncio.sleep(0)  # the scheduled flush finds nothing more to send
        assert real.writes == [b"headbody"]

        aborted = Recording()
        transport = CoalescingTransport(aborted, loop)
        transport.write(b"never")
        transport.abort()
        await asyncio.sleep(0)
        assert aborted.events == ["abort"]

    asyncio.run(main())


def test_nothing_is_written_to_a_connection_already_closing() -> None:
    async def main() -> None:
        real = Recording()
        transport = CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"late")
        real.closing = True  # the peer went away before the turn ended
        await asyncio.sleep(0)
        assert real.writes == []

    asyncio.run(main())


def test_conveyor_serve_runs_uvicorn_with_this_protocol() -> None:
    """The coalescing is on wherever the service is started: conveyor serve, its workers and
    the deployment server all take their uvicorn options from uvicorn_options."""

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        pass

    config = uvicorn.Config(app, **uvicorn_options("127.0.0.1", 1, drain_timeout_s=1))
    config.load()
    assert config.http_protocol_class is HttpProtocol
    assert config.ws_protocol_class is None
