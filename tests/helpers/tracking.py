"""Studies run with experiment trackers, and what the trackers wrote, read back through MLflow's
and TensorBoard's own APIs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from mlflow import MlflowClient
from mlflow.entities import Run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from search.data.registry import DataBundle
from search.study.spec import StudySpec
from search.study.storage import open_storage
from search.study.studies import load_or_create
from search.training.workers import WorkerJob, build_objective, work
from tests.helpers.configs import CPU, GOOD

# A space wide enough in lr to enqueue a trial that learns nothing and one that diverges.
SPACE = {"depth": [1, 2], "widths": [8, 16], "batch_sizes": [64], "optimizers": ["adam", "sgd"],
         "lr": [1e-7, 1e10]}
DIVERGES = {**GOOD, "optimizer": "sgd", "lr": 1e8, "sgd_momentum": 0.99, "sgd_nesterov": False,
            "weight_decay": 1e-6}
# Trial 0 completes; 1 (lr 1e-7 learns nothing) is pruned by successive halving at epoch 1
# behind trial 0; 2 fails (NaN loss); 3 completes or is pruned. Three of them finish.
ENQUEUED = (GOOD, {**GOOD, "lr": 1e-7}, DIVERGES, {**GOOD, "lr": 3e-3})
TARGET = 3
SPEC = StudySpec.from_flat({"epochs": 3, "pruner": "sha", "space": SPACE})


def tracked_study(folder: Path, data: DataBundle, track: tuple[str, ...], name: str = "tracked",
                  enqueued: tuple[dict, ...] = ENQUEUED, target: int = TARGET) -> optuna.Study:
    """Run ``enqueued`` through the real worker loop, logged to ``track``, in ``folder`` (cwd).

    The study is ``folder/study.db``, made if new; a ``target`` of 0 only makes it.
    """
    url = f"sqlite:///{folder / 'study.db'}"
    storage = open_storage(url)
    study = load_or_create(name, storage, SPEC)
    for params in enqueued:
        study.enqueue_trial(params)
    job = WorkerJob(study=name, url=url, target=target, worker=0, poll_s=0.2, track=track)
    objective = build_objective(name, SPEC, data, CPU, "none", folder / "checkpoints")
    work(job, storage, study, objective)
    return study


@dataclass(frozen=True)
class MlflowRuns:
    """A study's runs in an MLflow store: its parent runs and its trial runs by number."""

    client: MlflowClient
    parents: list[Run]
    trials: dict[int, list[Run]]


def mlflow_runs(uri: str, experiment: str) -> MlflowRuns:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r} in {uri}"
    runs = client.search_runs([found.experiment_id], max_results=10_000)
    parents = [r for r in runs if r.data.tags.get("cnn_search.role") == "study"]
    trials: dict[int, list[Run]] = {}
    for run in runs:
        if run.data.tags.get("cnn_search.role") == "trial":
            trials.setdefault(int(run.data.tags["cnn_search.trial"]), []).append(run)
    return MlflowRuns(client, parents, trials)


def history(client: MlflowClient, run: Run, metric: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run.info.run_id, metric)}


def event_folders(root: Path) -> dict[str, EventAccumulator]:
    """Each trial folder under ``root`` (runs/<study>/), loaded by TensorBoard's own reader."""
    loaded = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        accumulator = EventAccumulator(str(folder))
        accumulator.Reload()
        loaded[folder.name] = accumulator
    return loaded


def scalars(accumulator: EventAccumulator, tag: str) -> dict[int, float]:
    """A scalar's values by step; none where the folder has no such scalar."""
    if tag not in accumulator.Tags()["scalars"]:
        return {}
    return {e.step: e.value for e in accumulator.Scalars(tag)}


def session(accumulator: EventAccumulator) -> tuple[dict[str, object], int]:
    """The HParams session a trial folder holds: (its hparams, its end status)."""
    content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    values = {}
    for name, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        values[name] = getattr(value, kind)
    return values, end.status
