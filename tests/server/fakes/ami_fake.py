"""A fake Asterisk Manager Interface (asyncio TCP on loopback) that replays recorded
conversations (tests/server/fakes/ami_conversations/*.ami).

It greets with the banner, answers Login (checking username and secret), answers Originate with
"Originate successfully queued" and then replays the scenario's events with the Originate's
ActionID, ChannelId and Exten filled in. A `--- hangup ---` line in a recording waits until a
Hangup action arrives (or `talk_s` passes) before replaying the rest. Lines `# pause S` wait S
seconds. `drop_connections()` cuts every manager connection (a PBX restart, a network cut).

The recordings are RECONSTRUCTED, not captured: they were written by hand from Asterisk 18's
documented AMI event format (Asterisk is not installable here), trimmed to the fields that matter.
docs/telephony.md ("Re-basing the AMI tests on a real capture") says how a PBX administrator
captures a real session to replace them; a capture drops in as a new .ami file once its ids are
replaced by the {action_id}, {agent_uid} and {exten} placeholders.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

RECORDINGS = Path(__file__).parent / "ami_conversations"
BANNER = b"Asterisk Call Manager/7.0.3\r\n"


def _message(fields: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in fields).encode() + b"\r\n"


@dataclass
class FakeAmi:
    scenario: str = "answered"
    username: str = "bdc"
    secret: str = "ami-secret"
    talk_s: float = 8.0
    actions: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.AbstractServer | None = None
    _hangup: asyncio.Event | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def __enter__(self) -> FakeAmi:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def start() -> None:
                self._hangup = asyncio.Event()
                self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            loop.run_until_complete(start())
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(5), "fake AMI did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._loop is not None and self._server is not None

        async def stop() -> None:
            assert self._server is not None and self._hangup is not None
            self._hangup.set()
            self._server.close()
            for writer in self._writers:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()
            await self._server.wait_closed()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def drop_connections(self) -> None:
        """Close every manager connection, as a PBX restart or a network cut does."""
        assert self._loop is not None

        async def drop() -> None:
            for writer in self._writers:
                writer.close()
            self._writers.clear()

        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(5)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        writer.write(BANNER)
        logged_in = False
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                action = {}
                for line in block.decode().split("\r\n"):
                    key, sep, value = line.partition(":")
                    if sep:
                        action[key.strip()] = value.strip()
                self.actions.append(action)
                name, action_id = action.get("Action", ""), action.get("ActionID", "")
                if name == "Login":
                    logged_in = (action.get("Username"), action.get("Secret")) == (
                        self.username,
                        self.secret,
                    )
                    if logged_in:
                        writer.write(
                            _message(
                                [
                                    ("Response", "Success"),
                                    ("ActionID", action_id),
                                    ("Message", "Authentication accepted"),
                                ]
                            )
                        )
                        writer.write(
                            _message(
                                [
                                    ("Event", "FullyBooted"),
                                    ("Privilege", "system,all"),
                                    ("Status", "Fully Booted"),
                                ]
                            )
                        )
                    else:
                        writer.write(
                            _message(
                                [
                                    ("Response", "Error"),
                                    ("ActionID", action_id),
                                    ("Message", "Authentication failed"),
                                ]
                            )
                        )
                elif not logged_in:
                    writer.write(
                        _message(
                            [
                                ("Response", "Error"),
                                ("ActionID", action_id),
                                ("Message", "Permission denied"),
                            ]
                        )
                    )
                elif name == "Originate":
                    writer.write(
                        _message(
                            [
                                ("Response", "Success"),
                                ("ActionID", action_id),
                                ("Message", "Originate successfully queued"),
                            ]
                        )
                    )
                    asyncio.get_running_loop().create_task(self._replay(writer, action))
                elif name == "Hangup":
                    assert self._hangup is not None
                    self._hangup.set()
                    writer.write(
                        _message(
                            [
                                ("Response", "Success"),
                                ("ActionID", action_id),
                                ("Message", "Channel Hungup"),
                            ]
                        )
                    )
                else:
                    writer.write(
                        _message(
                            [
                                ("Response", "Error"),
                                ("ActionID", action_id),
                                ("Message", "Invalid/unknown command"),
                            ]
                        )
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _replay(self, writer: asyncio.StreamWriter, originate: dict[str, str]) -> None:
        text = (RECORDINGS / f"{self.scenario}.ami").read_text()
        values = {
            "action_id": originate.get("ActionID", ""),
            "agent_uid": originate.get("ChannelId", ""),
            "exten": originate.get("Exten", ""),
        }
        lines: list[str] = []
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("# pause"):
                await asyncio.sleep(float(line.split()[-1]))
            elif line == "--- hangup ---":
                assert self._hangup is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hangup.wait(), self.talk_s)
            elif line.startswith("#"):
                continue
            elif line:
                lines.append(line.format(**values))
                continue
            if lines:
                writer.write("\r\n".join(lines).encode() + b"\r\n\r\n")
                lines = []
                await writer.drain()
        if lines:
            writer.write("\r\n".join(lines).encode() + b"\r\n\r\n")
            await writer.drain()
