"""A guard against a reference-counting bug in some PySide6 builds, applied once at import.

The PySide6 6.12.0 wheels (cp310-abi3) return `None` from every void method, and `True`
from `SignalInstance.emit()`, without taking a reference. CPython 3.12+ made these objects
immortal (PEP 683), so there it is harmless; on CPython 3.10/3.11 each call lowers the
count, and after a few thousand calls (`label.setText`, `item.setPen`, ...) the interpreter
aborts with "Fatal Python error: none_dealloc: deallocating None".

On an interpreter without immortal objects, if a probe shows the bug, this module does what
PEP 683 does: it gives None, True and False a reference count no session can use up. These
three objects are never freed by CPython anyway, so nothing else changes. A fixed PySide6,
or CPython 3.12+, leaves everything as it is.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, QTimer, Signal

#: Added to the counts: 2**40 references cover about 10**12 buggy calls.
_MARGIN = 1 << 40


class _Probe(QObject):
    ping = Signal()


def _probe_loses_references() -> bool:
    """True if void calls or emits lower the count of None or True."""
    probe, timer = _Probe(), QTimer()
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(8):
        timer.setInterval(1)
        probe.ping.emit()
    after = sys.getrefcount(None), sys.getrefcount(True)
    return after[0] <= before[0] - 8 or after[1] <= before[1] - 8


def _make_immortal(obj: object) -> None:
    # ob_refcnt is the first field of every object (Py_ssize_t) before CPython 3.12.
    ctypes.c_ssize_t.from_address(id(obj)).value += _MARGIN


GUARDED = False
if (
    sys.implementation.name == "cpython"
    and sys.version_info < (3, 12)
    and _probe_loses_references()
):
    for _obj in (None, True, False):
        _make_immortal(_obj)
    GUARDED = True
