"""One workstation per user session (ui/single_instance.py): a second start hands over."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tests.ui.conftest import FakeDialer
from ui.composition import build_preview_window
from ui.main import LinkRouter
from ui.main_window import MainWindow, number_of_link
from ui.single_instance import (
    Claim,
    SingleInstance,
    decode,
    encode,
    instance_name,
    store_folder,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder() -> Iterator[Path]:
    """A short private folder (Unix socket paths are limited to ~100 characters)."""
    path = Path(tempfile.mkdtemp(prefix="bdc-si-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def name() -> str:
    return f"bdc-test-{uuid.uuid4().hex[:8]}"


def _claim_in_thread(second: SingleInstance, link: str) -> list[Claim]:
    """The second start blocks while it waits for the answer: the first one's loop must run
    (qtbot.wait*), so the second claims from a thread."""
    result: list[Claim] = []
    threading.Thread(target=lambda: result.append(second.claim(link)), daemon=True).start()
    return result


def _instances(name: str, folder: Path, timeout_s: float = 3.0) -> tuple[SingleInstance, ...]:
    return tuple(SingleInstance(name, folder=folder, timeout_s=timeout_s) for _ in range(2))


def test_the_second_start_hands_its_link_over_and_the_first_receives_it(
    qtbot: QtBot, folder: Path, name: str
) -> None:
    first, second = _instances(name, folder)
    try:
        assert first.claim() is Claim.PRIMARY
        received: list[str] = []
        first.message_received.connect(received.append)
        result = _claim_in_thread(second, "tel:+1-555-010-4477")
        qtbot.waitUntil(lambda: bool(result) and bool(received), timeout=5000)
        assert result == [Claim.HANDED_OVER]
        assert received == ["tel:+1-555-010-4477"]
        assert not second.listening  # it exits: it never became an instance

        # Without a link: "show yourself".
        result = _claim_in_thread(SingleInstance(name, folder=folder), "")
        qtbot.waitUntil(lambda: bool(result) and len(received) == 2, timeout=5000)
        assert result == [Claim.HANDED_OVER] and received[-1] == ""
    finally:
        first.close()
        second.close()


def test_after_the_instance_closes_the_next_start_becomes_it(
    qtbot: QtBot, folder: Path, name: str
) -> None:
    first, second = _instances(name, folder)
    assert first.claim() is Claim.PRIMARY
    first.close()
    try:
        assert second.claim() is Claim.PRIMARY
        assert second.listening
    finally:
        second.close()


@pytest.mark.skipif(sys.platform == "win32", reason="Unix socket files; Windows pipes vanish")
def test_a_socket_file_left_by_a_crashed_instance_does_not_block_the_next_start(
    qtbot: QtBot, folder: Path, name: str
) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(folder / name))  # bound, never listened, closed without unlinking
    stale.close()
    assert (folder / name).exists()
    first, second = _instances(name, folder)
    try:
        assert first.claim() is Claim.PRIMARY
        assert first.listening
        received: list[str] = []
        first.message_received.connect(received.append)
        result = _claim_in_thread(second, "tel:5550104477")
        qtbot.waitUntil(lambda: bool(received), timeout=5000)
        assert received == ["tel:5550104477"]
        qtbot.waitUntil(lambda: result == [Claim.HANDED_OVER], timeout=5000)
    finally:
        first.close()
        second.close()


def test_a_lock_left_by_a_crashed_instance_is_taken_over(
    qtbot: QtBot, folder: Path, name: str
) -> None:
    """A process that held the lock died without giving it up (its PID is gone)."""
    crash = (
        "import os, sys\n"
        "from PySide6.QtCore import QCoreApplication, QLockFile\n"
        "app = QCoreApplication([])\n"
        f"lock = QLockFile({str(folder / (name + '.lock'))!r})\n"
        "assert lock.tryLock(0)\n"
        "sys.stdout.flush()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", crash], check=True, timeout=60)
    assert (folder / f"{name}.lock").exists()
    instance = SingleInstance(name, folder=folder, timeout_s=0.5)
    try:
        assert instance.claim() is Claim.PRIMARY
        assert instance.listening
    finally:
        instance.close()


def test_an_instance_that_does_not_answer_is_reported_and_not_doubled(
    qtbot: QtBot, folder: Path, name: str
) -> None:
    """The first instance's loop is blocked (here: this thread sleeps, so it never accepts):
    the second waits its timeout, then says so; it does not start a second copy."""
    first, second = _instances(name, folder, timeout_s=0.5)
    try:
        assert first.claim() is Claim.PRIMARY
        received: list[str] = []
        first.message_received.connect(received.append)
        result = _claim_in_thread(second, "tel:5550104477")
        began = time.monotonic()
        while not result and time.monotonic() - began < 5:
            time.sleep(0.05)  # the first instance's loop does not run: it is "hung"
        assert result == [Claim.NOT_ANSWERING]
        assert not second.listening
        qtbot.wait(200)  # the loop runs again: the late message is read and acknowledged
    finally:
        first.close()
        second.close()


def test_names_differ_per_mode_and_data_folder(tmp_path: Path) -> None:
    from app.store.db import APP_DIR_NAME
    from ui.single_instance import STORE_DIR_NAME

    assert STORE_DIR_NAME == APP_DIR_NAME  # the folder of the store the instance guards
    assert instance_name() == instance_name(data_dir=store_folder())
    assert instance_name(demo=True) != instance_name()  # a demo never gets the real links
    assert instance_name(data_dir=tmp_path / "a") != instance_name(data_dir=tmp_path / "b")
    assert decode(encode("tel:+15550104477")) == "tel:+15550104477"
    assert decode(b"not json") is None and decode(b'{"link": 5}') is None


@pytest.mark.parametrize(
    ("link", "number"),
    [
        ("tel:+1-555-010-4477", "5550104477"),
        ("tel:%2B1%20(555)%20010-4477;ext=12", "5550104477"),
        ("callto://+15550104477", "5550104477"),
        ("TEL:555.010.4477?body=x", "5550104477"),
        ("5550104477", "5550104477"),
        ("tel:", ""),
    ],
)
def test_number_of_link(link: str, number: str) -> None:
    assert number_of_link(link) == number


def _window(qtbot: QtBot, dialer: FakeDialer | None = None) -> MainWindow:
    window = build_preview_window(lead_count=120, dialer=dialer or FakeDialer())
    qtbot.addWidget(window)
    window.resize(1400, 850)
    window.show()
    qtbot.waitExposed(window)
    return window


def _phones(window: MainWindow) -> dict[str, list[str]]:
    """lead id -> its phones' E.164 digits, for the leads in the queue."""
    found: dict[str, list[str]] = {}
    for row in range(window.model.rowCount()):
        item = window.model.item_at(row)
        assert item is not None
        lead = window.queue.detail(item.lead_id, window._clock()).lead  # type: ignore[attr-defined]
        found[item.lead_id] = [p.e164[-10:] for p in lead.phones if p.e164]
    return found


@pytest.mark.qt_log_ignore("does not support raise", "propagateSizeHints")  # offscreen
def test_a_handed_over_link_raises_the_window_and_selects_the_one_lead(
    qtbot: QtBot, folder: Path, name: str
) -> None:
    dialer = FakeDialer()
    window = _window(qtbot, dialer)
    phones = _phones(window)
    digits = [d for numbers in phones.values() for d in numbers]
    lead_id, number = next(
        (lead, numbers[0])
        for lead, numbers in phones.items()
        if numbers and digits.count(numbers[0]) == 1
    )
    window.showMinimized()
    router = LinkRouter()
    router.attach(window)
    raised: list[bool] = []
    original = window.bring_to_front
    window.bring_to_front = lambda: (raised.append(True), original())  # type: ignore[method-assign]
    first, second = _instances(name, folder)
    try:
        assert first.claim() is Claim.PRIMARY
        first.message_received.connect(router.received)
        link = f"tel:+1-{number[:3]}-{number[3:6]}-{number[6:]}"
        result = _claim_in_thread(second, link)
        qtbot.waitUntil(lambda: result == [Claim.HANDED_OVER] and bool(raised), timeout=5000)
        assert not window.isMinimized()
        assert window.search.text() == number
        assert window.model.rowCount() == 1
        current = window.current_item()
        assert current is not None and current.lead_id == lead_id
        assert current.name in window.lead_card.toHtml()  # its workspace shows
        assert dialer.dialed == []  # never dials by itself
    finally:
        first.close()
        second.close()


def test_a_link_matching_several_leads_leaves_the_filtered_search(qtbot: QtBot) -> None:
    dialer = FakeDialer()
    window = _window(qtbot, dialer)
    phones = _phones(window)
    window.select_first()
    counts: dict[str, int] = {}
    for numbers in phones.values():
        for area in {n[:3] for n in numbers}:
            counts[area] = counts.get(area, 0) + 1
    area = next(code for code, count in counts.items() if count >= 2)
    before = window.current_item()
    window.show_link(f"tel:{area}")
    assert window.search.text() == area
    assert window.model.rowCount() >= 2
    current = window.current_item()
    # No lead is picked for the agent: the selection is the one before, if still listed.
    assert current is None or (before is not None and current.lead_id == before.lead_id)
    assert dialer.dialed == []


def test_links_before_the_window_exists_wait_for_it(qtbot: QtBot) -> None:
    """A hand-over during sign-in: the latest link is applied once the window is shown."""
    window = _window(qtbot)
    router = LinkRouter("tel:1111111111")
    router.received("tel:5550104477")
    router.received("")  # "show yourself" keeps the link
    shown: list[str] = []
    window.show_link = shown.append  # type: ignore[method-assign]
    router.attach(window)
    assert shown == ["tel:5550104477"]


def test_a_second_program_start_hands_over_and_exits_0(
    qtbot: QtBot, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m ui.main tel:…` while an instance runs: no sign-in, exit 0, link delivered."""
    if sys.platform == "win32":
        pytest.skip("XDG folders choose the instance name on Unix")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    first = SingleInstance.for_workstation()
    assert first.folder == folder
    try:
        assert first.claim() is Claim.PRIMARY
        received: list[str] = []
        first.message_received.connect(received.append)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
        process = subprocess.Popen(
            [sys.executable, "-m", "ui.main", "tel:+15550104477"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            qtbot.waitUntil(lambda: process.poll() is not None, timeout=30000)
        finally:
            if process.poll() is None:
                process.kill()
            output = process.communicate()[0].decode()
        assert process.returncode == 0, output
        assert received == ["tel:+15550104477"]
    finally:
        first.close()


def test_links_after_the_window_closed_are_ignored(qtbot: QtBot) -> None:
    """The core is closing (outbox, store): a late click does not bring the window back."""
    window = _window(qtbot)
    router = LinkRouter()
    router.attach(window)
    window.close()
    router.closed()
    router.received("tel:5550104477")
    assert not window.isVisible()
    assert window.search.text() == ""
