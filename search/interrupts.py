"""Ctrl-C and SIGTERM as KeyboardInterrupt that cannot be lost.

Python drops an exception raised inside a finalizer or a weakref callback (it prints
"Exception ignored in ..." and carries on), so a Ctrl-C that lands while the garbage collector
runs one would vanish, and the search would go on to the end. The handler also notes the
signal, and the training loop asks after every batch, so a swallowed one is raised again there.
"""

from __future__ import annotations

import _weakrefset
import contextlib
import signal
import threading
import weakref
from collections.abc import Iterator
from types import FrameType

_signalled = False
_holding = False
_held_back = False
_INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


# Finalizers: __del__ methods anywhere, and the weakref callbacks of the standard library's
# weak containers and weakref.finalize. Ordinary calls into weakref.py are not finalizers: an
# interrupt that lands there is raised at once, as anywhere else.
_FINALIZER_FILES = (weakref.__file__, _weakrefset.__file__)
_CALLBACKS = ("remove", "_remove", "__call__")


def _in_finalizer(frame: FrameType | None) -> bool:
    if frame is None:
        return False
    code = frame.f_code
    if code.co_name == "__del__":
        return True
    return code.co_filename in _FINALIZER_FILES and code.co_name in _CALLBACKS


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    global _signalled, _held_back
    _signalled = True
    if _holding:
        _held_back = True  # raised by let_in()
        return
    if _in_finalizer(frame):
        # Raised here, it would be printed as "Exception ignored in ..." and dropped; noted,
        # it is raised by the next check() (the training loop asks after every batch).
        return
    raise KeyboardInterrupt


def install() -> None:
    """SIGINT and SIGTERM both raise KeyboardInterrupt: the running trial is failed, not left
    RUNNING. Call from the main thread, once per run."""
    global _signalled, _holding, _held_back
    _signalled = _holding = _held_back = False
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)


def check() -> None:
    """Raise KeyboardInterrupt if a signal came since install(), even one that was swallowed."""
    if _signalled:
        raise KeyboardInterrupt


def hold() -> None:
    """Keep Ctrl-C and SIGTERM pending until let_in(): for steps that must not stop half-way."""
    global _holding
    if threading.current_thread() is threading.main_thread():
        _holding = True
        # Also blocked, for a caller whose handlers are not install()'s.
        signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)


def let_in() -> None:
    """Deliver what hold() kept pending (it is raised here) and let later signals through."""
    global _holding, _held_back
    if threading.current_thread() is threading.main_thread():
        _holding = False
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPTS)
        if _held_back:
            _held_back = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def held() -> Iterator[None]:
    """The block runs to its end; a Ctrl-C or SIGTERM that came meanwhile is raised after it."""
    hold()
    try:
        yield
    finally:
        let_in()
