"""The one base class of every "the input is wrong" error.

A command turns any ``InputError`` into one line on stderr and exit code 2, so the CLI plumbing
needs to know this class alone, not every module that can refuse a value.
"""

from __future__ import annotations


class InputError(ValueError):
    """A value the user gave (a flag, a file, a stored spec) cannot be used: exit code 2."""


class UsageError(InputError):
    """Bad usage of a command: a name, a path or a combination of flags that cannot work."""
