"""The trackers around a search: each finished trial logged exactly once by the process that ran
it (--jobs 2, SQLite and PostgreSQL), a retry under its own number, a tracker that fails as one
warning line, and a tracker not installed refused before any work."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from model_space import sample_config
from search.data.registry import DataBundle
from search.schema import FAIL_REASON, INTERRUPTED
from search.study.studies import requeue_interrupted
from tests.helpers.servers import SERVERS, reachable
from tests.helpers.tracking import (
    ENQUEUED,
    SPEC,
    event_folders,
    history,
    mlflow_runs,
    tracked_study,
)

TINY = ("--epochs", "2", "--config", "tiny.toml", "--quiet", "--save-models", "none")
BOTH = ("--track", "mlflow", "--track", "tensorboard")


def _search(workdir: Path, *args: str, env: dict[str, str],
            timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "search.run", *args], cwd=workdir, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ, **env})


def _assert_logged_exactly_once(study: optuna.Study, uri: str, runs_dir: Path) -> None:
    numbers = [t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    runs = mlflow_runs(uri, study.study_name)
    # Rule: one study run, and each finished trial is one MLflow run and one TensorBoard
    # folder: none missing, none twice, although two processes logged them.
    assert len(runs.parents) == 1
    assert {n: len(found) for n, found in runs.trials.items()} == {n: 1 for n in numbers}
    assert sorted(event_folders(runs_dir)) == sorted(f"trial-{n}" for n in numbers)
    workers = {found[0].data.tags["worker"] for found in runs.trials.values()}
    assert len(workers) == 2  # both workers logged: the premise of the test


def test_trackers_log_each_trial_exactly_once_with_two_workers(workdir: Path) -> None:
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = _search(workdir, "--jobs", "2", "--trials", "8", *TINY, *BOTH,
                     env={"MLFLOW_TRACKING_URI": uri})
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    study = optuna.load_study(study_name="digits", storage="sqlite:///studies/digits.db")
    _assert_logged_exactly_once(study, uri, workdir / "runs" / "digits")


def test_trackers_log_each_trial_exactly_once_on_postgresql(workdir: Path) -> None:
    url = SERVERS["postgresql"]
    why = reachable(url)
    if why is not None:
        pytest.skip(f"postgresql server at {url} is unreachable: {why}")
    name = f"tracked-{uuid.uuid4().hex[:12]}"
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    try:
        result = _search(workdir, "--jobs", "2", "--trials", "8", "--storage", url, "--study", name,
                         *TINY, *BOTH, env={"MLFLOW_TRACKING_URI": uri})
        assert result.returncode == 0, result.stderr
        _assert_logged_exactly_once(optuna.load_study(study_name=name, storage=url), uri,
                                    workdir / "runs" / name)
    finally:
        with contextlib.suppress(KeyError):  # the run failed before it made the study
            optuna.delete_study(study_name=name, storage=url)


def test_trackers_that_fail_are_one_warning_line_each_and_the_search_goes_on(workdir: Path) -> None:
    (workdir / "runs").write_text("not a folder\n")  # TensorBoard cannot make runs/digits/
    started = time.monotonic()
    # An MLflow server that is not there: nothing listens on port 1.
    result = _search(workdir, "--trials", "3", *TINY, *BOTH,
                     env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"})
    seconds = time.monotonic() - started
    # Rule: a tracker that is down or misconfigured is one warning line naming where it logs;
    # the search ends as it would have, with every trial in the study.
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, result.stderr
    assert any("MLflow tracking (http://127.0.0.1:1)" in line for line in warnings)
    assert any("TensorBoard tracking" in line and "runs/digits" in line for line in warnings)
    assert "Traceback" not in result.stderr
    study = optuna.load_study(study_name="digits", storage="sqlite:///studies/digits.db")
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) == 3
    # Rule: and it is known within seconds, not after mlflow's minutes of retries.
    assert seconds < 90


@pytest.mark.parametrize("tracker", ["mlflow", "tensorboard"])
def test_trackers_not_installed_are_refused_before_any_work(workdir: Path, tracker: str) -> None:
    # sys.modules[name] = None is Python's own way to make a package absent for one process.
    code = (f"import sys; sys.modules[{tracker!r}] = None\n"
            "from search.run import main\n"
            f"sys.exit(main(['--track', {tracker!r}, '--trials', '1']))")
    before = sorted(p.name for p in workdir.iterdir())
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, text=True,
                            capture_output=True, timeout=120)
    # Rule: one line naming the extra to install, exit 2, nothing written.
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"python -m search.run: error: --track {tracker} needs "
        f"{'MLflow' if tracker == 'mlflow' else 'TensorBoard'}, which is not installed: "
        f"pip install 'cnn-search[{tracker}]'"]
    assert sorted(p.name for p in workdir.iterdir()) == before


def test_trackers_log_a_retry_under_its_own_number(workdir: Path, tiny: DataBundle,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # Trial 0 as Ctrl-C leaves it: failed as interrupted after one epoch, then queued again.
    study = tracked_study(workdir, tiny, (), enqueued=(ENQUEUED[0],), target=0)
    stopped = study.ask()
    sample_config(stopped, SPEC.space)  # the enqueued parameters, as the objective draws them
    stopped.report(0.5, step=1)
    stopped.set_user_attr(FAIL_REASON, INTERRUPTED)
    study.tell(stopped, state=TrialState.FAIL)
    requeue_interrupted(study)
    study = tracked_study(workdir, tiny, ("mlflow", "tensorboard"), enqueued=(), target=1)
    retry = study.trials[1]
    assert retry.state.is_finished() and retry.params == study.trials[0].params  # the premise
    runs = mlflow_runs(uri, "tracked")
    # Rule: the stopped attempt is not logged (no process finished it); its retry is, under its
    # own number, saying which trial it retries, with the whole curve the study holds for it.
    assert sorted(runs.trials) == [1]
    (run,) = runs.trials[1]
    assert run.data.tags["retry_of"] == "0"
    assert history(runs.client, run, "val_accuracy") == pytest.approx(retry.intermediate_values)
    assert sorted(event_folders(workdir / "runs" / "tracked")) == ["trial-1"]
