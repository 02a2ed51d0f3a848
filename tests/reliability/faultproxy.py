"""A loopback TCP proxy that breaks connections on purpose (seeded, so a run can be repeated).

    proxy = FaultProxy("127.0.0.1", server_port, seed=7, rates=FaultRates(drop=0.03, ...))
    await proxy.start()          # listens on proxy.port; clients talk to proxy.url
    ...
    proxy.enabled = False        # pass everything through (to let the system settle)
    await proxy.stop()
    proxy.counts                 # faults injected, by kind

It works on bytes, not HTTP: each chunk a client sends (in practice one request) draws a fault:

- drop: the chunk is swallowed and the connection closed (the request never reached the server).
- reset: the chunk is forwarded, then the connection is reset (RST) when the reply comes back —
  the server acted, the client never heard (the dangerous case for exactly-once).
- stall: the chunk is forwarded and the reply held for `stall_s` (longer than the client's read
  timeout), then the connection closed.
- delay: the chunk is held `delay_s` (uniform up to it) before it is forwarded.

No fault is drawn for a chunk while the connection already carries one, nor when `enabled` is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass

KINDS = ("drop", "reset", "stall", "delay")


@dataclass(frozen=True)
class FaultRates:
    drop: float = 0.03
    reset: float = 0.04
    stall: float = 0.02
    delay: float = 0.10
    delay_s: float = 0.15  # a delayed chunk waits uniform(0, delay_s)
    stall_s: float = 1.5  # longer than the clients' read timeout in the tests


class _Conn:
    def __init__(self) -> None:
        self.reset_on_reply = False
        self.stall_on_reply = False
        self.closed = False


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed middlebox or a dropped NAT entry does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        seed: int = 0,
        rates: FaultRates | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.rates = rates or FaultRates()
        self.rng = random.Random(seed)
        self.enabled = True
        self.counts: Counter[str] = Counter()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _draw(self) -> str | None:
        if not self.enabled:
            return None
        roll = self.rng.random()
        edge = 0.0
        for kind in KINDS:
            edge += getattr(self.rates, kind)
            if roll < edge:
                return kind
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            try:
                up_reader, upstream_writer = await asyncio.open_connection(*self.target)
            except OSError:
                self.counts["refused"] += 1
                _rst(writer)
                return
            self._writers.add(upstream_writer)
            conn = _Conn()
            pumps = [
                asyncio.ensure_future(
                    self._client_to_server(reader, upstream_writer, writer, conn)
                ),
                asyncio.ensure_future(self._server_to_client(up_reader, writer, conn)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                for pump in pumps:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await pump
        finally:
            for w in (writer, upstream_writer):
                if w is None:
                    continue
                self._writers.discard(w)
                w.transport.abort()
            self._tasks.discard(task)

    async def _client_to_server(
        self,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        conn: _Conn,
    ) -> None:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            fault = None if (conn.reset_on_reply or conn.stall_on_reply) else self._draw()
            if fault is not None:
                self.counts[fault] += 1
            if fault == "drop":
                _rst(client)
                return
            if fault == "delay":
                await asyncio.sleep(self.rng.uniform(0, self.rates.delay_s))
            elif fault == "reset":
                conn.reset_on_reply = True
            elif fault == "stall":
                conn.stall_on_reply = True
            upstream.write(chunk)
            await upstream.drain()

    async def _server_to_client(
        self, up_reader: asyncio.StreamReader, client: asyncio.StreamWriter, conn: _Conn
    ) -> None:
        while True:
            chunk = await up_reader.read(65536)
            if not chunk:
                return
            if conn.reset_on_reply:
                _rst(client)
                return
            if conn.stall_on_reply:
                await asyncio.sleep(self.rates.stall_s)
                return
            client.write(chunk)
            await client.drain()
