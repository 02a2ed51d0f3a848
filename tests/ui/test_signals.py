"""ui.signals.emit: emits from Python leave `True`'s reference count as it was (PySide6 6.12 on
Python 3.11 takes one per `SignalInstance.emit`, which aborted long runs: bool_dealloc)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from pytestqt.qtbot import QtBot

from ui.queue_model import QueueModel
from ui.signals import emit
from ui.theme import LIGHT


class _Source(QObject):
    changed = Signal(object)


def test_emits_through_the_helper_keep_trues_references(qtbot: QtBot) -> None:
    source = _Source()
    heard: list[object] = []
    source.changed.connect(heard.append)
    before = sys.getrefcount(True)
    for n in range(2_000):
        emit(source.changed, n)
    assert len(heard) == 2_000
    assert sys.getrefcount(True) >= before - 50  # not 2,000 fewer


def test_the_queue_models_countdown_ticks_keep_trues_references(qtbot: QtBot) -> None:
    from datetime import UTC, datetime

    from tests.ui.test_queue_model import _item

    now = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
    model = QueueModel(lambda: now, colors=LIGHT)
    model.set_items([_item(n, n * 60) for n in range(30)])
    before = sys.getrefcount(True)
    for _ in range(2_000):
        model.tick()
    assert sys.getrefcount(True) >= before - 50


def test_void_qt_calls_cannot_drain_none_while_a_window_lives(qtbot: QtBot) -> None:
    from PySide6.QtWidgets import QLabel

    from ui import signals

    label = QLabel()
    qtbot.addWidget(label)
    timer = signals.keep_singletons_alive(label)
    if not signals.VOID_CALLS_LEAK:  # a fixed PySide6 / Python 3.12+: nothing to do
        return
    assert timer is not None and timer.isActive()
    before = sys.getrefcount(None)
    for _ in range(5_000):
        label.setText("x")  # each takes a reference from None in the affected build
    qtbot.waitUntil(lambda: sys.getrefcount(None) > before, timeout=3_000)
