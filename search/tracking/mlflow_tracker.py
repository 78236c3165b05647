"""MLflow: one run per study, and nested in it one run per finished trial, through MlflowClient.

Not optuna-integration's MLflowCallback: it is deprecated (optuna-integration 4.9, to be removed
in 6.0), it logs through mlflow's fluent API, whose active run is global to a process, it keeps
neither per-epoch curves nor the pruned state, and it nests trials under a run that only its own
process knows. Here every process finds the study's run by a tag, under the study's lock.

Where: ``MLFLOW_TRACKING_URI`` when set, else mlflow's own default, which since mlflow 3.7 is
``sqlite:///mlflow.db`` in the current folder (mlflow 3.x refuses a new ``./mlruns`` file store
unless ``MLFLOW_ALLOW_FILE_STORE=true``); ``mlflow ui`` run in the same folder opens it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import optuna
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.store.db.db_types import DATABASE_ENGINES
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from sqlalchemy.engine import make_url

from search.optuna_private import rdb_backend
from search.schema import (
    LATENCY_MS,
    MACS,
    N_PARAMS,
    SECONDS_PER_EPOCH,
    SPEC_ATTR,
    TRACKING_ID_ATTR,
    TRAIN_LOSS,
)
from search.study.gate import FileLock, NoLock, TargetLock, target_lock
from search.study.storage import mask_url
from search.tracking.record import TrialRecord

# Tags on every run of a study: which study (TRACKING_ID_ATTR's value), and which run it is.
STUDY_ID_TAG = "cnn_search.study_id"
ROLE_TAG = "cnn_search.role"  # "study" (the parent) or "trial"
TRIAL_TAG = "cnn_search.trial"  # the trial's number
STATE_TAG = "state"  # "complete", "pruned" or "failed": MLflow's own statuses have no "pruned"
RETRY_TAG = "retry_of"  # a retried trial: its first attempt's number
# A trial's state as an MLflow run status (as mlflow.optuna's own storage maps them).
STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
# Trial user attrs logged as metrics (numbers to sort and plot); the others become tags.
METRIC_ATTRS = (N_PARAMS, MACS, LATENCY_MS, SECONDS_PER_EPOCH, "epochs_run")
NOT_TAGS = (*METRIC_ATTRS, TRAIN_LOSS)
# mlflow's own limits on one log_batch call, and on a tag's value.
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_TAG_CHARS = 5000
# mlflow retries an HTTP request 7 times with growing back-off: a server that is down takes
# 4 minutes to be known as down. Unless the user set them: 2 retries, 1 s back-off, 10 s timeout.
# And a run finished on a tracking server prints two lines with its URL (after one more request
# to the server): 200 lines for a 100-trial search. Not unless the user asks for them.
ENV_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def study_lock(study: optuna.Study) -> TargetLock:
    """A lock of its own on the study (search.study.gate): the gate's own object is the main
    thread's, and an flock does not exclude another thread holding the same file open."""
    backend = rdb_backend(study)
    return target_lock(backend, study.study_name) if backend is not None else NoLock()


def store_lock(uri: str, study: optuna.Study) -> TargetLock:
    """The lock to hold while opening a database-backed tracking store.

    mlflow creates and migrates its tables when it first opens a database, and two processes
    doing that at once both fail ("table _alembic_tmp_metrics already exists"; found with
    --jobs 2 on a new mlflow.db). A SQLite file, on this machine, gets a lock file of its own in
    the temporary folder, so training never waits on it (not an flock on the database itself:
    closing that file would drop SQLite's own locks in this process). A server database, reached
    from many machines, takes the study's lock. An HTTP tracking server orders its own writes.
    """
    if uri.split(":", 1)[0].split("+", 1)[0] not in DATABASE_ENGINES:
        return NoLock()
    parsed = make_url(uri)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        key = hashlib.blake2b(str(Path(parsed.database).resolve()).encode(), digest_size=8).hexdigest()
        return FileLock(Path(tempfile.gettempdir()) / f"cnn-search-mlflow-{key}.lock")
    return study_lock(study)


def tracking_id(study: optuna.Study) -> str:
    """The study's TRACKING_ID_ATTR, written now if it has none. Call under the study's lock."""
    existing = study.user_attrs.get(TRACKING_ID_ATTR)
    if isinstance(existing, str) and existing:
        return existing
    new = uuid.uuid4().hex
    study.set_user_attr(TRACKING_ID_ATTR, new)
    return new


class MlflowTracker:
    """Logs a study's finished trials as runs nested in the study's run."""

    def __init__(self, client: MlflowClient, experiment_id: str, parent_id: str, study_id: str) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.parent_id = parent_id
        self.study_id = study_id

    def log_trial(self, trial: TrialRecord) -> None:
        run = self.client.create_run(self.experiment_id, start_time=_ms(trial.started),
                                     tags=self._trial_tags(trial), run_name=f"trial-{trial.number}")
        run_id = run.info.run_id
        params = [Param(k, str(v)) for k, v in trial.params.items()]
        for metrics in _chunks(trial_metrics(trial), MAX_BATCH_METRICS):
            self.client.log_batch(run_id, metrics=metrics, params=params)
            params = []
        if params:
            self.client.log_batch(run_id, params=params)
        self.client.set_terminated(run_id, status=STATUS.get(trial.state, "FAILED"),
                                   end_time=_ms(trial.ended))

    def _trial_tags(self, trial: TrialRecord) -> dict[str, str]:
        tags = {k: _tag(v) for k, v in trial.attrs.items() if k not in NOT_TAGS}
        tags.update({MLFLOW_PARENT_RUN_ID: self.parent_id, STUDY_ID_TAG: self.study_id,
                     ROLE_TAG: "trial", TRIAL_TAG: str(trial.number), STATE_TAG: trial.state})
        if trial.retry_of is not None:
            tags[RETRY_TAG] = str(trial.retry_of)
        return tags

    def finish(self, done: bool) -> None:
        if done:  # the study reached its target: its run is over, until --trials asks for more
            self.client.set_terminated(self.parent_id, status="FINISHED")

    def log_files(self, files: Sequence[Path], folder: Path) -> None:
        """Attach report files to the study's run, at their paths relative to ``folder``."""
        for path in files:
            where = path.parent.relative_to(folder).as_posix()
            self.client.log_artifact(self.parent_id, str(path), None if where == "." else where)

    def log_numbers(self, values: dict[str, float]) -> None:
        now = _ms(datetime.now())
        self.client.log_batch(self.parent_id, metrics=[Metric(k, float(v), now, 0)
                                                       for k, v in values.items()])


def trial_metrics(trial: TrialRecord) -> list[Metric]:
    """Every epoch's val_accuracy and train_loss as steps, and the trial's size and speed."""
    metrics = [Metric(name, value, int(trial.epoch_time(step) * 1000), step)
               for name, curve in (("val_accuracy", trial.val_accuracy), ("train_loss", trial.train_loss))
               for step, value in curve.items()]
    end = _ms(trial.ended) or 0
    metrics += [Metric(name, float(trial.attrs[name]), end, 0) for name in METRIC_ATTRS
                if isinstance(trial.attrs.get(name), int | float)]
    return metrics


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _tag(value: Any) -> str:
    text = _text(value)
    return text if len(text) <= MAX_TAG_CHARS else text[:MAX_TAG_CHARS - 3] + "..."


def experiment(client: MlflowClient, name: str) -> str:
    """The id of the experiment named after the study, created if missing (two processes may
    race to create it: the loser finds the winner's)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name)
        except MlflowException:
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage != "active":
        raise MlflowException(f"experiment {name!r} is deleted in MLflow: restore it (mlflow "
                              "experiments restore) or remove it for good (mlflow gc)")
    return found.experiment_id


def parent_run(client: MlflowClient, experiment_id: str, study: optuna.Study) -> tuple[str, str]:
    """(run id, study id) of the study's run, created if no process has made it yet.

    Under the study's lock, so that workers and machines starting together make one: the first
    creates it, the others find it by its tag. Only this lookup is serialised, never training.
    """
    lock = study_lock(study)
    lock.acquire()
    try:
        study_id = tracking_id(study)
        query = f"tags.`{STUDY_ID_TAG}` = '{study_id}' and tags.`{ROLE_TAG}` = 'study'"
        runs = client.search_runs([experiment_id], query, max_results=1,
                                  order_by=["attributes.start_time ASC"])
        if runs:
            return runs[0].info.run_id, study_id
        return _new_parent(client, experiment_id, study, study_id), study_id
    finally:
        lock.release()


def _new_parent(client: MlflowClient, experiment_id: str, study: optuna.Study, study_id: str) -> str:
    run = client.create_run(experiment_id, run_name=study.study_name,
                            tags={STUDY_ID_TAG: study_id, ROLE_TAG: "study"})
    params = [Param(k, v) for k, v in spec_params(study).items()]
    for chunk in _chunks(params, MAX_BATCH_PARAMS):
        client.log_batch(run.info.run_id, params=chunk)
    return run.info.run_id


def spec_params(study: optuna.Study) -> dict[str, str]:
    """The study's stored spec as flat parameters (space.depth = "[1, 4]")."""
    try:
        spec = json.loads(study.user_attrs.get(SPEC_ATTR, "{}"))
    except (TypeError, ValueError):
        return {}
    flat = {k: _text(v) for k, v in spec.items() if k != "space"}
    flat.update({f"space.{k}": _text(v) for k, v in spec.get("space", {}).items()})
    return flat


def connect(study: optuna.Study, located: Callable[[str], None]) -> MlflowTracker:
    """Connect to the tracking store, and find or make the study's experiment and run."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # mlflow logs at INFO ("Creating initial MLflow database tables...") to stderr.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = mlflow.get_tracking_uri()
    located(mask_url(uri))
    lock = store_lock(uri, study)
    lock.acquire()
    try:
        client = MlflowClient(uri)  # opens the store: creates or migrates its tables
    finally:
        lock.release()
    experiment_id = experiment(client, study.study_name)
    parent_id, study_id = parent_run(client, experiment_id, study)
    return MlflowTracker(client, experiment_id, parent_id, study_id)


def open_tracker(study: optuna.Study, located: Callable[[str], None]) -> MlflowTracker:
    """The study's run, marked running again if an earlier run had finished it (--trials raised)."""
    tracker = connect(study, located)
    if tracker.client.get_run(tracker.parent_id).info.status != "RUNNING":
        tracker.client.update_run(tracker.parent_id, status="RUNNING")
    return tracker
