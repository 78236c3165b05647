"""Every bad input, on every CLI: exit 2, one line naming the bad value, no traceback, and no
study created or changed. The corpus itself is tests/search/badinput.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from search import report, run
from tests.helpers.badinput import CASES as BASE_CASES
from tests.helpers.badinput import MARKER, Case
from tests.helpers.badinput_data import DATA_CASES
from tests.helpers.clirunner import Outcome, run_forked, run_process, snapshot
from tests.helpers.configs import TINY_SPACE_TOML

CASES = [*BASE_CASES, *DATA_CASES]
# Cases that also run as a plain `python -m`, imports and all: one or more per CLI, and those
# whose time limit must hold for a fresh interpreter.
FRESH = ("run-trials-not-a-number", "run-postgres-closed-port", "run-postgres-silent-server",
         "run-mysql-silent-server", "report-old-schema", "retrain-crafted-pickle-as-config",
         "predict-crafted-plain-pickle", "dashboard-port-in-use")
# Every answer, connection timeouts included, comes within this many seconds (plus, in a fresh
# interpreter, that interpreter's own start-up).
ANSWER_S = 10


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real finished study (2 trials of 1 epoch) and its report, made once for the corpus."""
    root = tmp_path_factory.mktemp("finished")
    (root / "tiny.toml").write_text(TINY_SPACE_TOML)
    old = Path.cwd()
    os.chdir(root)
    try:
        assert run.main(["--trials", "2", "--epochs", "1", "--config", "tiny.toml", "--quiet",
                         "--save-models", "none"]) == 0
        assert report.main(["--seeds", "1", "--device", "cpu"]) == 0
    finally:
        os.chdir(old)
    yield root


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, str]]:
    """A server that accepts connections and never answers, and a port already taken."""
    with socket.create_server(("127.0.0.1", 0)) as silent, \
            socket.create_server(("127.0.0.1", 0)) as busy:
        yield {"silent": str(silent.getsockname()[1]), "busy": str(busy.getsockname()[1])}


def _prepare(case: Case, tmp_path: Path, finished: Path, ports: dict[str, str]) -> tuple[Path, list[str]]:
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "tiny.toml").write_text(TINY_SPACE_TOML)
    case.setup(folder, finished)
    return folder, [arg.format(**ports) for arg in case.argv]


def _check(case: Case, outcome: Outcome, before: dict[str, str], folder: Path,
           limit_s: float = ANSWER_S) -> None:
    shown = f"stdout: {outcome.out!r}\nstderr: {outcome.err!r}"
    # Rule: bad input exits 2 ...
    assert outcome.code == case.code, shown
    # ... with exactly one line, on stderr, from the CLI, naming the bad value ...
    lines = outcome.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m search.{case.module}: "), shown
    assert case.named in lines[0], shown
    # ... no traceback and no secret anywhere ...
    assert "Traceback" not in outcome.out + outcome.err, shown
    assert case.hidden is None or case.hidden not in outcome.out + outcome.err, shown
    # ... a prompt answer, no file created or changed (no study, no report), and no file
    # unpickled on the way.
    assert outcome.seconds < limit_s, shown
    assert snapshot(folder) == before
    assert not (folder / MARKER).exists()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
        case: Case, tmp_path: Path, finished: Path, ports: dict[str, str]) -> None:
    folder, argv = _prepare(case, tmp_path, finished, ports)
    before = snapshot(folder)
    outcome = run_forked(f"search.{case.module}", argv, folder, tmp_path / "logs")
    _check(case, outcome, before, folder)


@pytest.fixture(scope="module")
def startup_s() -> Callable[[str], float]:
    """Seconds a fresh interpreter takes to import what a command loads, torch included (--help
    alone loads no torch, so it no longer measures that)."""
    seen: dict[str, float] = {}

    def measure(module: str) -> float:
        if module not in seen:
            started = time.perf_counter()
            imports = ("import torch, search.training.session, search.results.reporting, "
                       f"search.results.classify, search.{module}")
            subprocess.run([sys.executable, "-c", imports], capture_output=True, check=True)
            seen[module] = time.perf_counter() - started
        return seen[module]

    return measure


@pytest.mark.parametrize("case", [c for c in CASES if c.id in FRESH],
                         ids=[c.id for c in CASES if c.id in FRESH])
def test_bad_input_in_a_fresh_interpreter(
        case: Case, tmp_path: Path, finished: Path, ports: dict[str, str],
        startup_s: Callable[[str], float]) -> None:
    folder, argv = _prepare(case, tmp_path, finished, ports)
    before = snapshot(folder)
    outcome = run_process(f"search.{case.module}", argv, folder)
    # A fresh interpreter pays its imports first: seconds on a slow machine, before any wait.
    _check(case, outcome, before, folder, ANSWER_S + startup_s(case.module))


def test_corpus_covers_every_cli_with_25_cases_or_more() -> None:
    # Rule: the corpus is at least 25 cases and reaches all five CLIs; ids are unique.
    assert len(CASES) >= 25
    assert {c.module for c in CASES} == {"run", "report", "retrain", "predict", "dashboard"}
    assert len({c.id for c in CASES}) == len(CASES)
    assert set(FRESH) <= {c.id for c in CASES}


def _read_only_prefix(folder: Path) -> tuple[str, ...]:
    """A command prefix under which ``folder`` is read-only, or skip saying why there is none.

    chmod does it for a normal user. Root writes through any mode bits, so for root the folder
    is bind-mounted read-only in a private mount namespace (unshare), which ends with the
    process: nothing to undo, nothing seen outside.
    """
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return ()
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("running as root without unshare: no way to make a folder read-only")
    probe = subprocess.run([unshare, "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root and unshare is not allowed here: {probe.stderr!r}")
    mount = f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} && exec \"$@\""
    return (unshare, "--map-root-user", "--mount", "sh", "-c", mount, "sh")


def test_read_only_studies_folder_is_refused_before_work(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY_SPACE_TOML)
    studies = tmp_path / "studies"
    studies.mkdir()
    prefix = _read_only_prefix(studies)
    outcome = run_process("search.run", ["--trials", "1", "--epochs", "1", "--config",
                                         "tiny.toml"], tmp_path, prefix=prefix)
    studies.chmod(0o755)
    # Rule: a studies/ folder the search cannot write is one line naming it, exit 2, nothing
    # written, and it is said before any data loads or trial runs.
    assert outcome.code == 2, outcome.err
    assert outcome.err.strip() == ("python -m search.run: error: cannot write studies to folder "
                                   "'studies': it is read-only; make it writable or pass "
                                   "--storage with a writable location")
    assert list(studies.iterdir()) == []
