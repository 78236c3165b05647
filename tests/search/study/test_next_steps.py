"""The next commands a run and a report print are complete and correct for every --study and
--storage pair: the tests run what was printed."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import optuna
import pytest

from search.study.next_steps import (
    dashboard_command,
    report_command,
    resume_command,
    search_command,
)
from search.study.spec import StudySpec
from search.study.storage import open_storage
from search.study.studies import load_or_create
from tests.helpers.ports import free_port
from tests.helpers.servers import SERVERS, reachable

TINY = ["--epochs", "1", "--config", "tiny.toml", "--quiet", "--pruner", "none"]


@pytest.mark.parametrize(("study", "url", "expected"), [
    ("digits", "sqlite:///studies/digits.db", "python -m search.report --study digits"),
    # The case that once printed a report command without its storage.
    ("foo", "sqlite:///studies/bar.db",
     "python -m search.report --study foo --storage sqlite:///studies/bar.db"),
    ("a", "sqlite:///my studies/a.db",
     "python -m search.report --study a --storage 'sqlite:///my studies/a.db'"),
    ("s", "postgresql://u:secret@db/x",
     "python -m search.report --study s --storage 'postgresql://u:***@db/x'"),
])
def test_next_steps_report_command(study: str, url: str, expected: str) -> None:
    # Rule: the storage is named whenever it is not the study's default; arguments are quoted;
    # a password never is printed.
    assert report_command(study, url) == expected


def test_next_steps_dashboard_and_resume_commands() -> None:
    # Rule: the dashboard takes --study on the default storage and --storage elsewhere; a resume
    # names the target and, for several workers, --jobs.
    assert dashboard_command("d", "sqlite:///studies/d.db") == "python -m search.dashboard --study d"
    assert dashboard_command("d", "sqlite:///x.db") == "python -m search.dashboard --storage sqlite:///x.db"
    assert resume_command("d", "sqlite:///x.db", 9, jobs=2) == (
        "python -m search.run --study d --storage sqlite:///x.db --trials 9 --jobs 2")
    assert search_command("d", "sqlite:///studies/d.db") == "python -m search.run --study d"


def _run(line: str, cwd: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a printed ``python -m ...`` line as it reads, with this interpreter."""
    argv = shlex.split(line)
    assert argv[:2] == ["python", "-m"], line
    return subprocess.run([sys.executable, *argv[1:], *extra], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout)


def _printed(stdout: str, label: str) -> str:
    (line,) = [row for row in stdout.splitlines() if row.startswith(f"{label}:")]
    return line.removeprefix(f"{label}:").strip()


def _serves(line: str, cwd: Path) -> bool:
    port = free_port()
    argv = shlex.split(line)
    server = subprocess.Popen([sys.executable, *argv[1:], "--port", str(port)], cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    return r.status == 200
            except OSError:
                time.sleep(0.3)
        return False
    finally:
        server.terminate()
        server.wait(timeout=30)


def _where(case: str) -> list[str]:
    if case == "default":
        return []
    if case == "other file":
        return ["--study", "foo", "--storage", "sqlite:///studies/bar.db"]
    if case == "space in path":
        return ["--storage", "sqlite:///my studies/x y.db"]
    why = reachable(SERVERS["postgresql"])
    if why:
        pytest.skip(f"PostgreSQL not reachable: {why}")
    return ["--study", f"next-{uuid.uuid4().hex[:8]}", "--storage", SERVERS["postgresql"]]


@pytest.mark.parametrize("case", ["default", "other file", "space in path", "postgresql"])
def test_next_steps_printed_by_run_work(workdir: Path, case: str) -> None:
    where = _where(case)
    searched = _run(shlex.join(["python", "-m", "search.run", *where, "--trials", "2", *TINY]),
                    workdir)
    assert searched.returncode == 0, searched.stderr
    # Rule: the printed report command reports this study (not another, not a missing file).
    reported = _run(_printed(searched.stdout, "export"), workdir, "--seeds", "1", "--device", "cpu")
    assert reported.returncode == 0, reported.stderr
    study = "foo" if case == "other file" else where[1] if case == "postgresql" else "digits"
    assert (workdir / "reports" / study / "model.pt").exists()
    # Rule: the printed dashboard command serves the study's storage.
    assert _serves(_printed(searched.stdout, "browse"), workdir)
    # Rule: a resume command (as an interrupted run prints it) reaches the same study.
    storage = where[where.index("--storage") + 1] if "--storage" in where else (
        "sqlite:///studies/digits.db")
    resumed = _run(resume_command(study, storage, 3), workdir, *TINY)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 finished trials (target 3)" in resumed.stdout
    trials = optuna.load_study(study_name=study, storage=storage if "///" not in storage else
                               storage.replace("sqlite:///", f"sqlite:///{workdir}/")).trials
    assert len(trials) == 3


def test_next_steps_report_without_complete_trial_names_the_storage(workdir: Path) -> None:
    (workdir / "studies").mkdir()
    url = "sqlite:///studies/bar.db"
    tiny = {"epochs": 1, "pruner": "none", "baseline": False,
            "space": {"depth": [1, 2], "widths": [8, 16], "batch_sizes": [64]}}
    load_or_create("foo", open_storage(url), StudySpec.from_flat(tiny))  # ours, with no trial yet
    failed = _run(report_command("foo", url), workdir)
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
    # Rule: the report's hint names this study's storage, and running it searches that study.
    hint = failed.stderr.split("; run ", 1)[1].removesuffix(" first\n")
    assert hint == "python -m search.run --study foo --storage sqlite:///studies/bar.db"
    searched = _run(hint, workdir, "--trials", "1", "--quiet")
    assert searched.returncode == 0, searched.stderr
    assert len(optuna.load_study(study_name="foo", storage=f"sqlite:///{workdir}/studies/bar.db")
               .get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 1
