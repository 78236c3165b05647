"""A full disk, for real: a tiny tmpfs mounted (in a private mount namespace made by unshare)
where the models or the report are written. One line, exit 1, the study intact.

The mount lives and dies with the command's process and is seen by nothing else. Where unshare
or mounting is not allowed the tests skip, saying why.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers.clirunner import run_process
from tests.helpers.configs import TINY_SPACE_TOML

TINY = ["--epochs", "1", "--config", "tiny.toml", "--quiet", "--pruner", "none"]


def _full_disk_prefix(folder: Path, size_k: int, left: Path) -> tuple[str, ...]:
    """A command prefix under which ``folder`` is a tmpfs of ``size_k`` KiB, or skip. What the
    command leaves in the folder is listed into ``left`` before the mount goes away."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare here: no way to mount a small file system for the test")
    probe = subprocess.run([unshare, "--map-root-user", "--mount", "sh", "-c",
                            f"mount -t tmpfs -o size=4k tmpfs {folder}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"mounting a tmpfs in a user namespace is not allowed here: {probe.stderr!r}")
    mount = (f"mount -t tmpfs -o size={size_k}k tmpfs {folder} || exit 99; \"$@\"; code=$?; "
             f"ls -A {folder} > {left}; exit $code")
    return (unshare, "--map-root-user", "--mount", "sh", "-c", mount, "sh")


def test_full_disk_for_models_stops_the_run_and_keeps_the_trial(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY_SPACE_TOML)
    models = tmp_path / "studies" / "artifacts" / "digits"
    models.mkdir(parents=True)
    left = tmp_path / "left.txt"
    prefix = _full_disk_prefix(models, size_k=4, left=left)  # room for a lock file, not a model
    outcome = run_process("search.run", ["--trials", "3", *TINY], tmp_path, prefix=prefix)
    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{tmp_path}/studies/digits.db")
    states = [t.state for t in study.trials]
    # Rule: one line naming the cause and the folder, exit 1, no traceback ...
    assert outcome.code == 1, outcome.err
    (line,) = outcome.err.splitlines()
    assert "No space left on device" in line and "studies/artifacts/digits" in line
    assert "the study is intact" in line and "Traceback" not in outcome.out + outcome.err
    # ... and the trial whose only fault was saving its model completed; the run stopped there.
    assert states == [TrialState.COMPLETE]
    assert left.read_text().split() == [".best.lock"]  # no half-written model left behind


def test_full_disk_for_the_report_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY_SPACE_TOML)
    searched = run_process("search.run", ["--trials", "2", "--save-models", "none", *TINY], tmp_path)
    assert searched.code == 0, searched.err
    reports = tmp_path / "reports"
    reports.mkdir()
    left = tmp_path / "left.txt"
    prefix = _full_disk_prefix(reports, size_k=16, left=left)  # best_config.json fits, model.pt not
    outcome = run_process("search.report", ["--seeds", "1", "--device", "cpu"], tmp_path,
                          prefix=prefix)
    # Rule: a full disk during the report is one line and exit 1, not an abort in C++ (134).
    assert outcome.code == 1, outcome.err
    (line,) = outcome.err.splitlines()
    assert "No space left on device" in line and "Traceback" not in outcome.err
    # No partial report folder is left behind; the seeds that finished wait for the next run.
    assert [name for name in left.read_text().split() if not name.endswith(".seeds")] == []
