"""Real baresip softphones on loopback for the telephony tests: one per fixture, own config folder,
free ports, killed at the end. No sound card: audio comes from `ausine` (48 kHz, so the Opus codec)
and goes to an `aubridge` device nobody reads.

When the `baresip` binary is missing the tests FAIL (they must run in CI; `.ci/run` installs
Debian's baresip-core), they never skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CUSTOMER = "+13125550123"  # the far end answers calls to this number's digits


def baresip_binary() -> str:
    found = shutil.which("baresip")
    if found is None:
        pytest.fail(
            "baresip is not installed: the softphone tests need a real baresip "
            "(Debian: apt-get install baresip-core; .ci/run installs it)"
        )
    return found


def _free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Ports handed out in this process. A port is only free until somebody binds it, and the OS
# gladly offers the same one twice: a softphone once got its SIP and ctrl_tcp ports equal, SIP
# took the port, and the "softphone" that answered the tests' connection was its SIP stack.
_handed_out: set[int] = set()


def free_port(span: int = 1) -> int:
    """A port p with p..p+span-1 free on TCP and UDP (baresip takes SIP UDP+TCP, TLS on p+1),
    none of them handed out before in this process."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + span >= 65535:
            continue
        ports = range(port, port + span)
        if _handed_out.intersection(ports):
            continue
        if all(_free(p, socket.SOCK_STREAM) and _free(p, socket.SOCK_DGRAM) for p in ports):
            _handed_out.update(ports)
            return port
    raise RuntimeError("no free port found")


@dataclass
class Softphone:
    folder: Path
    user: str
    answermode: str  # manual | auto
    sip_port: int = field(default_factory=lambda: free_port(2))
    ctrl_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    def write_config(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen 127.0.0.1:{self.sip_port}",
                    "audio_player aubridge,nobody",
                    "audio_alert aubridge,nobody",
                    "audio_source ausine,440",
                    "module_path /usr/lib/baresip/modules",
                    "module opus.so",
                    "module aubridge.so",
                    "module ausine.so",
                    "module_app account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
                    "",
                ]
            )
        )
        (self.folder / "accounts").write_text(
            f"<{self.aor}>;regint=0;answermode={self.answermode}\n"
        )
        (self.folder / "contacts").write_text("")

    def start(self) -> Softphone:
        binary = baresip_binary()
        self.write_config()
        log_path = self.folder / "baresip.log"
        earlier = log_path.stat().st_size if log_path.exists() else 0  # a restart appends
        log = log_path.open("ab")
        self.process = subprocess.Popen(
            [binary, "-f", str(self.folder)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"baresip exited at start: {self.log_tail()}")
            # Ready once it says so (its modules, ctrl_tcp among them, are loaded by then), and
            # not by a connection: something else listening on the port is not its ctrl_tcp, and
            # ctrl_tcp keeps one connection, so a probe would drop a dialer already reconnected.
            log_text = log_path.read_bytes()[earlier:].decode(errors="replace")
            if "failed to listen" in log_text:
                raise RuntimeError(f"baresip could not take its ports: {log_text}")
            if "baresip is ready." in log_text:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"baresip did not get ready in time: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=3)
        self.process = None

    def log_tail(self, lines: int = 20) -> str:
        path = self.folder / "baresip.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
