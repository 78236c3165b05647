"""Faults during a search: a killed process, a trial too big for memory, a diverging trial.

Ctrl-C and SIGTERM are in test_run.py (test_run_interrupt_leaves_no_running_trial_and_resumes)
and, with --jobs, in test_scale.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.schema import FAIL_REASON
from search.study.gate import FileLock, _try_one
from search.study.storage import open_storage
from tests.helpers.clirunner import run_forked
from tests.helpers.studies import cli, finished, load, read_states, states, wait_for

# Width 10**17: its first convolution alone asks for 3.6e18 bytes, past any machine's address
# space, so allocation fails at once and deterministically, before any memory is touched.
TOO_WIDE = """
[space]
depth = [1, 1]
widths = [8, 100000000000000000]
batch_sizes = [64]
"""
# Learning rates up to 1e12 with SGD: about half the draws blow the loss up to NaN.
DIVERGING = """
[space]
depth = [1, 1]
widths = [8]
batch_sizes = [64]
optimizers = ["sgd"]
lr = [1e-2, 1e12]
"""


def test_kill_9_orphaned_trial_is_failed_by_the_next_run_which_finishes(workdir: Path) -> None:
    db = workdir / "studies" / "digits.db"
    # Long unpruned trials (100 epochs, a few seconds) make sure the kill lands inside one.
    args = [sys.executable, "-m", "search.run", "--trials", "2", "--epochs", "100", "--pruner",
            "none", "--config", "tiny.toml", "--quiet"]
    proc = subprocess.Popen(args, cwd=workdir, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        # Training has begun (an epoch reported), so every parameter of the trial is stored.
        wait_for(lambda: read_states(db).count("COMPLETE") >= 1 and any(
            t.state == TrialState.RUNNING and t.intermediate_values for t in load(db).trials))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    orphan = next(t for t in load(db).trials if t.state == TrialState.RUNNING)
    result = cli("--trials", "2", "--quiet", cwd=workdir, timeout=120)
    study = load(db)
    after = study.trials[orphan.number]
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == orphan.number]
    # Rule: the next run fails the killed run's trial at once (its process is gone, no 40 s
    # heartbeat wait), says so, reruns its parameters and finishes the study: nothing RUNNING.
    assert result.returncode == 0, result.stderr
    assert f"trial {orphan.number} was left RUNNING" in result.stderr
    assert "Traceback" not in result.stderr
    assert after.state == TrialState.FAIL and "ended during the trial" in after.user_attrs[FAIL_REASON]
    assert len(retry) == 1 and retry[0].params == orphan.params
    assert retry[0].state == TrialState.COMPLETE
    # Rule: the retry that completed does not carry the killed attempt's failure reason.
    assert FAIL_REASON not in retry[0].user_attrs
    assert finished(study) == 2 and TrialState.RUNNING not in states(study)


@pytest.mark.parametrize(("space", "reason"), [
    (TOO_WIDE, "can't allocate memory"),
    (DIVERGING, "training loss became"),
], ids=["out-of-memory", "diverged"])
def test_failing_trial_fails_alone_with_its_reason_and_the_study_goes_on(
        workdir: Path, tmp_path: Path, space: str, reason: str) -> None:
    (workdir / "space.toml").write_text(space)
    # A real process, so what Optuna logs is on its stderr.
    outcome = run_forked("search.run", ["--config", "space.toml", "--trials", "4", "--epochs", "1",
                                        "--sampler", "random", "--quiet"], workdir, tmp_path / "logs")
    study = load(workdir / "studies" / "digits.db")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    # Rule: the trial that cannot run fails with its reason in fail_reason, logged in one line
    # (no traceback), and the study still reaches its target with the trials that can run.
    assert outcome.code == 0, outcome.err
    assert failed and all(reason in t.user_attrs[FAIL_REASON] for t in failed)
    assert finished(study) == 4
    assert "Traceback" not in outcome.err
    assert all(f"Trial {t.number} failed" in outcome.err for t in failed)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_gate_fails_a_stale_trial_that_holds_the_count_and_reruns_it(tmp_path: Path) -> None:
    # Rule: a trial whose worker went silent (no heartbeat past the grace period) does not keep
    # the study from its target: the gate fails it, and its parameters run again.
    storage = open_storage(f"sqlite:///{tmp_path / 'gate.db'}", heartbeat=(1, 2))
    study = optuna.create_study(study_name="gate", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    silent = study.ask()  # RUNNING, never told; nobody beats for it after this one beat
    silent.suggest_float("x", 0, 1)
    storage.record_heartbeat(silent._trial_id)
    time.sleep(3.2)  # SQLite keeps whole seconds: the beat must be over 2 s old by them
    outcome = _try_one(study, lambda t: t.suggest_float("x", 0, 1), 2,
                       FileLock(tmp_path / "gate.db.lock"), None, {})
    trials = study.get_trials(deepcopy=False)
    assert outcome == "ran"
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL,
                                         TrialState.COMPLETE]
    assert trials[2].params == trials[1].params
