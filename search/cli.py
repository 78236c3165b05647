"""Shared CLI plumbing: one-line errors and the exit codes every entry point uses."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from typing import NoReturn

import optuna

EXIT_OK = 0
EXIT_FAILURE = 1  # something failed while working
EXIT_USAGE = 2  # bad usage or bad input
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM

_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class UsageError(Exception):
    """Bad usage or input: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the bad value, with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def fail(prog: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def check_study_name(name: str) -> str:
    # Study names become file names under studies/ and reports/: nothing may escape them.
    if not _STUDY_NAME.match(name) or ".." in name:
        raise UsageError(f"study name {name!r} must be 1-128 letters, digits, '.', '_' or '-' "
                         "and must not contain '..'")
    return name


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1 but got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number but got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 but got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number but got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number but got {text!r}")
    return value


def quiet_libraries() -> None:
    """Warnings only from Optuna and Alembic: our own progress bar and summary say the rest."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def sigterm_as_interrupt() -> None:
    """SIGTERM takes the same clean path as Ctrl-C: the running trial is failed, not left RUNNING."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
