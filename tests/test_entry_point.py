"""``pip install`` gives a ``cnn-search`` command whose subcommands are the five commands, with
the same parsers as ``python -m search.<command>``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = ("run", "report", "retrain", "predict", "dashboard")
SCRIPT = Path(sys.executable).parent / "cnn-search"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not SCRIPT.exists(), reason=f"{SCRIPT} not installed (pip install -e .)")
@pytest.mark.parametrize("command", COMMANDS)
def test_entry_point_subcommand_help_is_the_module_help(command: str) -> None:
    installed = _run(str(SCRIPT), command, "--help")
    module = _run(sys.executable, "-m", f"search.{command}", "--help")
    # Rule: the same parser, named as it was called.
    assert installed.returncode == module.returncode == 0, installed.stderr
    words = installed.stdout.replace(f"cnn-search {command}", f"python -m search.{command}").split()
    assert words == module.stdout.split()  # the usage lines wrap at another width


def test_entry_point_lists_commands_and_refuses_unknown_ones() -> None:
    listing = _run(sys.executable, "-m", "search", "--help")
    unknown = _run(sys.executable, "-m", "search", "serch")
    bad_flag = _run(sys.executable, "-m", "search", "run", "--trails", "3")
    # Rule: --help lists every command; a bad command or flag is one line and exit 2.
    assert listing.returncode == 0 and all(f"  {c} " in listing.stdout for c in COMMANDS)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "'serch'" in unknown.stderr
    assert bad_flag.returncode == 2 and bad_flag.stderr.startswith("cnn-search run: error:")
    assert "did you mean --trials?" in bad_flag.stderr
