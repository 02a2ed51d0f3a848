"""Emitting Qt signals from Python without draining `True`'s reference count.

PySide6 6.12 on Python 3.11 returns `True` from `SignalInstance.emit()` without a reference of
its own: every emit from Python takes one reference away from `True`. Python 3.11's `True` is
not immortal, so after enough emits (the queue's countdown alone emits every second, a bulk
update once per changed row) the interpreter aborts with "Fatal Python error: bool_dealloc"
— seen in the 50,000-lead benchmark during the first sync. `emit()` gives the reference back,
only where this build is measured (once, at import) to take it.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

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
