"""Emitting Qt signals from Python without draining `True`'s reference count.

PySide6 6.12 on Python 3.11 returns `True` from `SignalInstance.emit()` without a reference of
its own: every emit from Python takes one reference away from `True`. Python 3.11's `True` is
not immortal, so after enough emits (the queue's countdown alone emits every second, a bulk
update once per changed row) the interpreter aborts with "Fatal Python error: bool_dealloc"
— seen in the 50,000-lead benchmark during the first sync. `emit()` gives the reference back,
only where this build is measured (once, at import) to take it.

The same build also takes one reference from `None` per call of a Qt method that returns nothing
(`setText`, `update`, `processEvents`, `killTimer` — qasync calls that for every asyncio
callback): thousands per minute in a working window, "Fatal Python error: none_dealloc" after
hours (minutes in a benchmark that spins `QTest.qWait(1)`). Those calls are everywhere, so
`keep_singletons_alive` tops the three singletons' counts up once a second instead, by far more
than can be taken meanwhile (an extra reference to `None` is harmless: it is never freed, and
the count is 64-bit). Python 3.12 made them immortal; there the probes find nothing to do.

pyproject.toml excludes 6.12.0 and tests/ui/test_pyside_build.py fails on a build that leaks, so
with the program's own dependencies the probes find nothing to do; this stays as the safety net
for a PySide6 installed some other way (a distribution's package, a later build that regresses).
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, SignalInstance

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None


class _Probe(QObject):
    ping = Signal()


def _emit_takes_a_reference() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(16):
        probe.ping.emit()
    taken = sys.getrefcount(True) <= before - 16
    if taken:
        for _ in range(16):
            _incref(True)
    return taken


EMIT_LEAKS = _emit_takes_a_reference()


def emit(signal: SignalInstance, *args: Any) -> None:
    """`signal.emit(*args)`, giving back the reference the emit took (where it takes one)."""
    result = signal.emit(*args)
    if EMIT_LEAKS:
        _incref(result)


def _void_calls_take_a_reference() -> bool:
    probe = _Probe()
    before = sys.getrefcount(None)
    for _ in range(16):
        probe.setObjectName("probe")
    taken = sys.getrefcount(None) <= before - 16
    if taken:
        for _ in range(16):
            _incref(None)
    return taken


VOID_CALLS_LEAK = _void_calls_take_a_reference()
TOP_UP = 1_000_000  # references given to each singleton per second: far above what is taken
TOP_UP_MS = 1_000


def _top_up() -> None:
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += TOP_UP


def keep_singletons_alive(parent: QObject) -> QTimer | None:
    """Where Qt calls take references from None/True/False (see the module doc), top them up
    every second for as long as `parent` lives; None where nothing needs it."""
    if not (VOID_CALLS_LEAK or EMIT_LEAKS):
        return None
    _top_up()
    timer = QTimer(parent)
    timer.setObjectName("singleton_top_up")
    timer.setInterval(TOP_UP_MS)
    timer.timeout.connect(_top_up)
    timer.start()
    return timer
