from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from model_space import baseline_params
from search.run import main
from search.schema import INTERRUPTED
from search.study.spec import StudySpec
from search.study.studies import needs_baseline, stored_spec
from tests.helpers.studies import (
    cli,
    finished,
    load,
    read_states,
    refused_in_one_line,
    states,
    wait_for,
)

TINY = ["--epochs", "2", "--config", "tiny.toml", "--quiet"]


def test_run_cli_six_trials_end_to_end(workdir: Path) -> None:
    # Rule: the CLI creates studies/digits.db with exactly the target, prints a summary, and the
    # standard optuna CLI can read the study.
    result = cli("--trials", "6", *TINY, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "6 finished trials (target 6)" in result.stdout
    assert "best val_accuracy" in result.stdout
    assert "browse:  python -m search.dashboard --study digits" in result.stdout
    assert "export:  python -m search.report --study digits" in result.stdout
    study = load(workdir / "studies" / "digits.db")
    assert finished(study) == 6
    assert study.metric_names == ["val_accuracy"]
    listing = subprocess.run(
        [str(Path(sys.executable).parent / "optuna"), "trials", "--storage",
         "sqlite:///studies/digits.db", "--study-name", "digits", "-f", "json"],
        cwd=workdir, text=True, capture_output=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count('"number"') == 6


def test_run_target_is_a_study_wide_total(workdir: Path) -> None:
    # Rule: --trials N is the study's total; rerunning a finished study adds nothing, a higher N
    # adds the difference.
    assert main(["--trials", "3", *TINY]) == 0
    db = workdir / "studies" / "digits.db"
    assert finished(load(db)) == 3
    assert main(["--trials", "3", *TINY]) == 0
    assert len(states(load(db))) == 3
    assert main(["--trials", "5", "--quiet"]) == 0  # the stored spec is reused
    assert finished(load(db)) == 5


def baseline_trials(study: optuna.Study) -> list[int]:
    return [t.number for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")]


def test_run_starts_a_new_study_with_the_baseline_once(workdir: Path) -> None:
    # Rule: --baseline makes a new study's first trial the textbook recipe fitted to its space;
    # a resumed study does not get it again. On digits it is off unless asked (measured).
    assert main(["--trials", "2", "--baseline", *TINY]) == 0
    study = load(workdir / "studies" / "digits.db")
    space = StudySpec.from_flat(stored_spec(study._storage, "digits")).space
    assert baseline_trials(study) == [0]
    assert study.trials[0].params == baseline_params(space)
    assert main(["--trials", "3", "--quiet"]) == 0
    assert baseline_trials(load(workdir / "studies" / "digits.db")) == [0]
    assert main(["--trials", "2", "--study", "plain", *TINY]) == 0
    plain = load(workdir / "studies" / "plain.db", "plain")
    assert baseline_trials(plain) == []
    assert plain.trials[0].params != baseline_params(space)
    assert stored_spec(plain._storage, "plain")["baseline"] is False


def test_run_refuses_a_spec_that_contradicts_the_stored_one(workdir: Path, capsys) -> None:
    # Rule: a resumed study keeps its setup; asking for another one is a usage error.
    assert main(["--trials", "1", *TINY]) == 0
    capsys.readouterr()
    assert main(["--trials", "2", "--epochs", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "epochs=2, not 3" in err and err.count("\n") == 1
    assert len(states(load(workdir / "studies" / "digits.db"))) == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--trials", "-3"], "-3"),
        (["--trials", "many"], "many"),
        (["--epochs", "0"], "0"),
        (["--sampler", "anneal"], "anneal"),
        (["--pruner", "asha"], "asha"),
        (["--dataset", "imagenet"], "imagenet"),
        (["--study", "../escape"], "../escape"),
        (["--config", "missing.toml"], "missing.toml"),
        (["--device", "tpu"], "tpu"),
    ],
)
def test_run_bad_input_is_one_line_exit_2_and_creates_nothing(
    workdir: Path, capsys, args: list[str], named: str
) -> None:
    # Rule: bad input gets one line naming the bad value, exit code 2, and no study file.
    refused_in_one_line(args, named, workdir, capsys)


def test_run_bad_toml_key_is_refused(workdir: Path, capsys) -> None:
    # Rule: an unknown key in a study spec is an error naming the key.
    (workdir / "bad.toml").write_text("epochs = 2\nlearning_rate = 0.1\n")
    assert main(["--config", "bad.toml"]) == 2
    assert "learning_rate" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_interrupt_leaves_no_running_trial_and_resumes(workdir: Path, sig: int) -> None:
    # Rule: Ctrl-C (or SIGTERM) fails the running trial, exits 130 with a resume hint, and the
    # same command then finishes exactly the remainder.
    db = workdir / "studies" / "digits.db"
    # Long unpruned trials (100 epochs, a few seconds) make sure the signal lands inside one.
    args = [sys.executable, "-m", "search.run", "--trials", "2", "--epochs", "100", "--pruner",
            "none", "--config", "tiny.toml", "--quiet"]
    proc = subprocess.Popen(args, cwd=workdir, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)

    def one_done_one_running() -> bool:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"run ended before the signal (rc {proc.returncode}): {err}")
        found = read_states(db)
        return sum(s in ("COMPLETE", "PRUNED") for s in found) >= 1 and "RUNNING" in found

    wait_for(one_done_one_running)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Resume with: python -m search.run --study digits --trials 2" in err
    assert "Traceback" not in err  # Optuna's log of the interrupted trial comes without one
    study = load(db)
    assert TrialState.RUNNING not in states(study)
    assert TrialState.FAIL in states(study)
    result = cli("--trials", "2", "--quiet", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert finished(load(db)) == 2


def test_run_interrupted_during_the_recipe_queues_it_again(workdir: Path) -> None:
    # Rule: a recipe trial stopped by Ctrl-C is marked as interrupted and runs again on resume;
    # the study does not lose its strongest first trial to an early Ctrl-C.
    db = workdir / "studies" / "digits.db"
    args = [sys.executable, "-m", "search.run", "--trials", "2", "--epochs", "100", "--pruner",
            "none", "--baseline", "--config", "tiny.toml", "--quiet"]
    proc = subprocess.Popen(args, cwd=workdir, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    wait_for(lambda: "RUNNING" in read_states(db))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (stopped,) = load(db).get_trials(deepcopy=False)
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["baseline"]
    assert stopped.user_attrs["fail_reason"] == "interrupted (Ctrl-C or SIGTERM)"
    result = cli("--trials", "1", "--epochs", "100", "--quiet", cwd=workdir)
    assert result.returncode == 0, result.stderr
    study = load(db)
    space = StudySpec.from_flat(stored_spec(study._storage, "digits")).space
    assert baseline_trials(study) == [0, 1]
    assert study.trials[1].state == TrialState.COMPLETE
    assert study.trials[1].params == baseline_params(space)


def finished_trial(state: TrialState, **user_attrs: object) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(state=state, user_attrs=user_attrs,
                                     value=0.5 if state == TrialState.COMPLETE else None)


def test_needs_baseline_only_for_a_new_study_or_an_interrupted_recipe() -> None:
    # Rule: a recipe that failed on its own, or ran, is not queued again.
    interrupted = finished_trial(TrialState.FAIL, baseline=True, fail_reason=INTERRUPTED)
    assert needs_baseline([])
    assert needs_baseline([interrupted])
    assert needs_baseline([interrupted, finished_trial(TrialState.COMPLETE)])
    assert not needs_baseline([interrupted, finished_trial(TrialState.COMPLETE, baseline=True)])
    assert not needs_baseline([finished_trial(TrialState.FAIL, baseline=True,
                                              fail_reason="diverged: loss is nan at epoch 1")])
    assert not needs_baseline([finished_trial(TrialState.COMPLETE)])  # a study without one
