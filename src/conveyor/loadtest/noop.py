"""A no-op HTTP endpoint: the fastest server the generator can meet, to measure its ceiling.

It answers every request with the same small JSON body, after reading the request's body by
its ``Content-Length``. It runs in its own process, pinned to one CPU when the machine has more
than one, so the scheduler keeps the generator on the others.

This module imports only the standard library: it runs as a script
(``python .../noop.py --port 0``) and prints ``port N`` once it is listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

_BODY = b'{"predictions": [0]}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)
_MAX_HEAD = 65536


class NoopProtocol(asyncio.Protocol):
    """Frames requests by Content-Length and answers each one at once (pipelining works)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        answers = 0
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    self._close()
                return self._answer(answers)
            head = bytes(buf[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                try:
                    length = int(head[at + 17 : line_end if line_end >= 0 else None])
                except ValueError:
                    self._close()
                    return None
            if len(buf) < end + 4 + length:
                return self._answer(answers)
            del buf[: end + 4 + length]
            answers += 1

    def _answer(self, n: int) -> None:
        if n and self.transport is not None:
            self.transport.write(RESPONSE * n)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(host: str, port: int) -> None:
    """Listen on ``host:port`` (0 = any free port) until cancelled; print the port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NoopProtocol, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"port {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def server_cpus() -> set[int] | None:
    """The CPU to pin the server to: the last one this process may use, or None on one CPU.

    Only the server is pinned. Pinning the generator to the remaining CPU as well measured a
    lower and noisier ceiling whenever other work shared the machine (it can no longer move
    off a busy CPU), and no higher one on an idle machine.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return {cpus[-1]} if len(cpus) > 1 else None


@contextlib.contextmanager
def noop_server(host: str = "127.0.0.1", *, cpus: set[int] | None = None) -> Iterator[int]:
    """Start the no-op server in a child process; yields its port; stops it on exit."""
    cmd = [sys.executable, "-I", os.path.abspath(__file__), "--host", host, "--port", "0"]
    if cpus:
        cmd += ["--cpus", ",".join(str(c) for c in sorted(cpus))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("port "):
            raise RuntimeError(f"the no-op server did not start (exit code {proc.poll()})")
        yield int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpus", default="", help="comma-separated CPUs to pin this process to")
    args = parser.parse_args(argv)
    if args.cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
