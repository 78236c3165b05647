"""Ctrl-C and SIGTERM as KeyboardInterrupt that cannot be lost, nor printed as noise."""

from __future__ import annotations

import signal
import sys
import threading
import time

import pytest

from search import interrupts


class _Finalized:
    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)  # a Ctrl-C that lands while a finalizer runs


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_outside_a_finalizer_raises_at_once(interrupts_installed: None, sig: int) -> None:
    # Rule: both signals raise KeyboardInterrupt where the program is.
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(sig)


def test_interrupt_in_a_finalizer_is_raised_at_the_next_check(
        interrupts_installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    dropped: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)
    _Finalized()  # collected at once: __del__ runs here
    # Rule: raised inside a finalizer, the interrupt would be printed as "Exception ignored" and
    # lost; it is noted instead, and the next check (after every training batch) raises it.
    assert dropped == []
    with pytest.raises(KeyboardInterrupt):
        interrupts.check()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_through_another_thread_waits_for_the_end_of_a_held_block(
        interrupts_installed: None, sig: int) -> None:
    # The kernel may hand a process's signal to any thread that does not block it (Optuna's
    # heartbeat, a checkpoint write); Python runs the handler in the main thread regardless.
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    steps = []
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.held():
            assert other.ident is not None
            signal.pthread_kill(other.ident, sig)
            # The kernel delivers it when it next runs the other thread: wait, inside the
            # block, until the handler has run (a fixed count of steps raced it when other
            # tests kept the cores busy, and the signal landed after the block).
            deadline = time.monotonic() + 10
            while not interrupts._signalled and time.monotonic() < deadline:
                pass
            for step in range(1000):
                steps.append(step)
    finally:
        stop.set()
        other.join()
    # Rule: the block runs to its end; the interrupt is raised after it.
    assert len(steps) == 1000
