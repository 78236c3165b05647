"""Ctrl-C and SIGTERM as KeyboardInterrupt that cannot be lost, nor printed as noise."""

from __future__ import annotations

import signal
import sys

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
