"""Shared CLI plumbing: one-line errors and the exit codes every entry point uses."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn

import optuna
from sqlalchemy.exc import SQLAlchemyError

from search.errors import InputError, UsageError  # noqa: F401 - commands raise cli.UsageError
from search.hints import did_you_mean, first_line
from search.optuna_private import TRIAL_LOGGER

EXIT_OK = 0
EXIT_FAILURE = 1  # something failed while working
EXIT_USAGE = 2  # bad usage or bad input
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM

class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the bad value, with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{self._nearest_flag(message)} "
                              "(see --help)\n")

    def _nearest_flag(self, message: str) -> str:
        # Python 3.11's argparse does not suggest a flag for a typo like --trails.
        unknown = re.match(r"unrecognized arguments: (-[^\s=]+)", message)
        if unknown is None:
            return ""
        flags = [flag for action in self._actions for flag in action.option_strings]
        return did_you_mean(unknown.group(1), flags)


def fail(prog: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number but got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a number >= {minimum} but got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _finite_float(text: str, ok: Callable[[float], bool], wanted: str) -> float:
    """A finite number for which ``ok`` holds; else one line naming the text (nan fails ``ok``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number but got {text!r}") from None
    if not ok(value) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected {wanted} but got {text!r}")
    return value


def name_list(text: str) -> list[str]:
    """``a,b,c`` as a list of names; an empty name is refused here, unknown ones by the spec."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names but got {text!r}")
    return names


def positive_float(text: str) -> float:
    return _finite_float(text, lambda v: v > 0, "a positive number")


def non_negative_float(text: str) -> float:
    return _finite_float(text, lambda v: v >= 0, "a number >= 0")


_VALUE_NONE = re.compile(r"^Trial \d+ failed with value None\.$")


class _PlainTrialFailures(logging.Filter):
    """Optuna logs a trial that raised with the whole traceback, Ctrl-C included.

    A trial that runs out of memory is an outcome, not a bug: one line says why, and the reason
    is kept in the trial's fail_reason user attr. An exception the run does not expect is raised
    again by Optuna after this record, so its traceback still reaches the user.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            return False  # the CLI says "interrupted" and how to resume
        if _VALUE_NONE.match(record.getMessage()):
            return False  # repeats the line before it, which gave the reason
        record.exc_info = None
        record.exc_text = None
        return True


def quiet_libraries() -> None:
    """Warnings only from Optuna and Alembic: our own progress bar and summary say the rest."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    trial_logger = logging.getLogger(TRIAL_LOGGER)
    if not any(isinstance(f, _PlainTrialFailures) for f in trial_logger.filters):
        trial_logger.addFilter(_PlainTrialFailures())


_PATH_ERRNOS = (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP)


def _os_error_line(error: OSError) -> str:
    where = f"{error.filename!r}: " if error.filename else ""
    return f"{where}{error.strerror or error}"


def run_cli(prog: str, work: Callable[[], int], on_interrupt: int = EXIT_INTERRUPTED) -> int:
    """Run a CLI's work; every expected way it can end becomes one line and an exit code.

    Bad input exits 2, a failure while working (a disk or a database that fails) exits 1,
    Ctrl-C ``on_interrupt`` (130, or 0 for a server that Ctrl-C is the way to stop). Anything
    else is a bug and keeps its traceback.
    """
    try:
        return work()
    except InputError as error:  # "the input is wrong", not "something broke"
        return fail(prog, str(error))
    except KeyboardInterrupt:
        # Outside a trial (loading data, printing the summary): nothing is left RUNNING.
        return fail(prog, "interrupted", on_interrupt) if on_interrupt else on_interrupt
    except BrokenPipeError:
        # Output piped into `head` and closed early: the work is intact, say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as error:
        # A path no file can have is the user's input; a disk or a device that fails is not.
        code = EXIT_USAGE if error.errno in _PATH_ERRNOS else EXIT_FAILURE
        return fail(prog, _os_error_line(error), code)
    except SQLAlchemyError as error:
        # The database failed mid-work (server gone, disk full); finished trials are stored.
        return fail(prog, f"the study storage failed: {first_line(error)}", EXIT_FAILURE)


