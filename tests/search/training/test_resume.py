"""Resumable trials: a trial stopped by SIGTERM, Ctrl-C or kill -9 continues from its last
finished epoch, bit for bit on the CPU; a bad checkpoint restarts it from epoch 0."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from model_space import TrialConfig, build_model, build_optimizer
from search.data.registry import DataBundle
from search.schema import RESUMED_FROM_EPOCH
from search.study.gate import WORKER_ATTR
from search.training.checkpoints import TrialCheckpoints
from search.training.loop import EpochResult, fit
from search.training.objective import seed_everything
from search.training.workers import start_workers
from tests.helpers.servers import SERVERS, reachable
from tests.helpers.workers import jobs_for, new_study, stop_mid_trial, tiny_spec

# Trials slow enough (about half a second an epoch here) for a signal to land between epochs.
SLOW_SPACE = "[space]\ndepth = [2, 2]\nwidths = [64]\nbatch_sizes = [16]\noptimizers = [\"adam\"]\n"
RUN = ["--epochs", "10", "--pruner", "none", "--config", "slow.toml", "--quiet"]
CONFIG = TrialConfig(widths=(16, 16), optimizer="sgd", lr=0.05, weight_decay=5e-4, dropout=0.2,
                     batch_size=32, momentum=0.9, nesterov=True, augment=True)


class _Stop(Exception):
    pass


def _train(data: DataBundle, epochs: int, **kwargs: object) -> tuple[torch.nn.Module, list]:
    seed_everything(7)
    model = build_model(CONFIG, data.input_shape, data.n_classes)
    results = fit(model, build_optimizer(CONFIG, model.parameters()), CONFIG, data, epochs, 7,
                  torch.device("cpu"), **kwargs)
    return model, results


def _values(results: list[EpochResult]) -> list[tuple[int, float, float]]:
    return [(r.epoch, r.train_loss, r.val_accuracy) for r in results]


def test_resume_after_epoch_k_is_bit_identical_on_the_cpu(tiny: DataBundle, tmp_path: Path) -> None:
    whole, whole_results = _train(tiny, 6)
    checkpoints = TrialCheckpoints(tmp_path)
    writer = checkpoints.writer(0)

    def stop_after_3(result: EpochResult) -> None:
        if result.epoch == 3:  # epoch 4 of 6 is trained, reported; the process is then stopped
            raise _Stop

    with pytest.raises(_Stop):
        _train(tiny, 6, on_epoch=stop_after_3, checkpoint=lambda s: writer.save(s, CONFIG))
    writer.flush()
    state = checkpoints.load(0, CONFIG)
    assert state is not None and len(state.epochs) == 3
    resumed, resumed_results = _train(tiny, 6, resume=state)
    # Rule: weights and every epoch's values equal those of the same trial never stopped.
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert _values(resumed_results) == _values(whole_results)


def test_writes_wait_for_the_interval_and_an_interrupt_writes_what_waits(
        tiny: DataBundle, tmp_path: Path) -> None:
    checkpoints = TrialCheckpoints(tmp_path, save_every=3600)
    writer = checkpoints.writer(0)

    def stop_after_3(result: EpochResult) -> None:
        if result.epoch == 3:
            raise _Stop

    with pytest.raises(_Stop):
        _train(tiny, 6, on_epoch=stop_after_3, checkpoint=lambda s: writer.save(s, CONFIG))
    # Rule: within the interval nothing is written; the stop (flush) writes the last epoch kept.
    assert not checkpoints.path(0).exists()
    writer.flush()
    state = checkpoints.load(0, CONFIG)
    assert state is not None and len(state.epochs) == 3


def test_sigterm_just_after_an_epoch_is_reported_still_checkpoints_that_epoch(
        tiny: DataBundle, tmp_path: Path, interrupts_installed: None) -> None:
    checkpoints = TrialCheckpoints(tmp_path, save_every=3600)
    writer = checkpoints.writer(0)

    def preempted_after_2(result: EpochResult) -> None:
        if result.epoch == 1:  # the study has epoch 2 now; the signal lands before the copy
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        _train(tiny, 4, on_epoch=preempted_after_2, checkpoint=lambda s: writer.save(s, CONFIG))
    writer.flush()
    state = checkpoints.load(0, CONFIG)
    # Rule: an epoch the study has is an epoch the checkpoint has: the retry trains none again.
    assert state is not None and len(state.epochs) == 2


def _stopped_after_two_epochs(data: DataBundle, folder: Path, number: int) -> TrialCheckpoints:
    """Trial ``number``'s checkpoint after its second epoch, the process then stopped."""
    checkpoints = TrialCheckpoints(folder)
    writer = checkpoints.writer(number)

    def stop_after_2(result: EpochResult) -> None:
        if result.epoch == 1:
            raise _Stop

    with pytest.raises(_Stop):
        _train(data, 4, on_epoch=stop_after_2, checkpoint=lambda s: writer.save(s, CONFIG))
    writer.flush()
    return checkpoints


@pytest.mark.parametrize("spoil", [
    lambda p: p.write_bytes(b"not a checkpoint"),
    lambda p: p.write_bytes(p.read_bytes()[:200]),
    lambda p: torch.save({"format": "something-else"}, p),
], ids=["garbage", "truncated", "foreign"])
def test_bad_checkpoint_restarts_from_epoch_0_with_one_warning(
        tiny: DataBundle, tmp_path: Path, capsys: pytest.CaptureFixture[str], spoil) -> None:
    checkpoints = _stopped_after_two_epochs(tiny, tmp_path, number=5)
    spoil(checkpoints.path(5))
    # Rule: an unusable checkpoint is named in one warning line and the trial starts again.
    assert checkpoints.load(5, CONFIG) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trial-5.pt" in err and "from epoch 0" in err
    assert not checkpoints.path(5).exists()


def test_checkpoint_of_another_configuration_is_not_resumed(tiny: DataBundle, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    checkpoints = _stopped_after_two_epochs(tiny, tmp_path, number=1)
    other = TrialConfig(**{**CONFIG.to_dict(), "widths": (8,)})
    # Rule: a tampered or mismatched checkpoint never loads into another network.
    assert checkpoints.load(1, other) is None
    assert "another configuration" in capsys.readouterr().err


def _trials(db: Path) -> list[tuple[str, int]]:
    """(state, values reported) of each trial, read without writing."""
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as connection:
            return connection.execute(
                "SELECT t.state, COUNT(v.trial_intermediate_value_id) FROM trials t LEFT JOIN "
                "trial_intermediate_values v ON v.trial_id = t.trial_id GROUP BY t.trial_id "
                "ORDER BY t.number").fetchall()
    except sqlite3.Error:
        return []


def _stop_at_epoch(workdir: Path, sig: int, epoch: int,
                   flags: list[str]) -> subprocess.CompletedProcess | None:
    (workdir / "slow.toml").write_text(SLOW_SPACE)
    db = workdir / "studies" / "digits.db"
    proc = subprocess.Popen([sys.executable, "-m", "search.run", "--trials", "1", *RUN, *flags],
                            cwd=workdir, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not any(state == "RUNNING" and n >= epoch for state, n in _trials(db)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# SIGTERM with the default --checkpoint-every (2 s, longer than the 3 epochs trained): the
# finished epochs not yet on disk are written at the signal. kill -9 gives no such chance, so
# that run writes every epoch.
@pytest.mark.parametrize(("sig", "flags"), [(signal.SIGTERM, []),
                                            (signal.SIGKILL, ["--checkpoint-every", "0"])],
                         ids=["sigterm", "kill-9"])
def test_stopped_trial_resumes_at_the_next_epoch_on_local_sqlite(workdir: Path, sig: int,
                                                                 flags: list[str]) -> None:
    stopped = _stop_at_epoch(workdir, sig, epoch=3, flags=flags)
    if sig == signal.SIGTERM:
        # Rule: SIGTERM (a preemption) stops the run with exit 130 within seconds.
        assert stopped.returncode == 130, stopped.stderr
    checkpoint_dir = workdir / "studies" / "checkpoints" / "digits"
    assert [p.name for p in checkpoint_dir.iterdir()] == ["trial-0.pt"]
    result = subprocess.run([sys.executable, "-m", "search.run", "--trials", "1", *RUN],
                            cwd=workdir, text=True, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="digits", storage="sqlite:///studies/digits.db")
    first, retry = study.trials
    done_before = len(first.intermediate_values)
    # Rule: the retry continues after the first attempt's last saved epoch: SIGTERM loses no
    # epoch, kill -9 at most one; the two attempts train at most 11 epochs together.
    lost = done_before - retry.user_attrs[RESUMED_FROM_EPOCH]
    assert lost == 0 if sig == signal.SIGTERM else lost <= 1
    assert done_before + (10 - retry.user_attrs[RESUMED_FROM_EPOCH]) <= 11
    assert retry.state == TrialState.COMPLETE and retry.params == first.params
    assert sorted(retry.intermediate_values) == list(range(1, 11))
    assert retry.user_attrs["epochs_run"] == 10
    assert "resumed: 1 trial(s)" in result.stdout
    # Rule: a finished trial leaves no checkpoint behind.
    assert list(checkpoint_dir.iterdir()) == []


def test_killed_worker_resumes_from_its_checkpoint_on_postgresql(tmp_path: Path) -> None:
    url = SERVERS["postgresql"]
    why = reachable(url)
    if why is not None:
        pytest.skip(f"postgresql server at {url} is unreachable: {why}")
    name, study = new_study(url, tiny_spec(epochs=10, pruner="none"))
    jobs = [dataclasses.replace(job, checkpoint_dir=str(tmp_path), checkpoint_every=0)
            for job in jobs_for(name, url, 3, 2)]
    processes = start_workers(jobs)
    try:
        victim = stop_mid_trial(study, {p.pid for p in processes}, min_epochs=3)
        os.kill(int(victim.user_attrs[WORKER_ATTR].split(":")[1]), signal.SIGKILL)
        for process in processes:
            process.join(timeout=240)
        trials = study.get_trials(deepcopy=False)
        (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
        # Rule: the surviving worker resumes the killed trial from its checkpoint (at most one
        # epoch lost), and the study reaches exactly its target.
        assert len(victim.intermediate_values) - retry.user_attrs[RESUMED_FROM_EPOCH] <= 1
        assert retry.state == TrialState.COMPLETE and retry.user_attrs["epochs_run"] == 10
        assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        optuna.delete_study(study_name=name, storage=url)
