from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna.artifacts import download_artifact, get_all_artifact_meta

from model_space import TrialConfig, build_model
from search.data.registry import DataBundle
from search.results.artifacts import (
    artifact_dir,
    best_model_record,
    open_store,
    upload_report_artifacts,
)
from search.results.checkpoint import load_checkpoint, write_checkpoint
from search.results.model_saver import ModelSaver
from search.run import main
from search.training.objective import Objective
from tests.helpers.configs import CPU, GOOD, WIDE_LR

CONFIG = TrialConfig(widths=(8,), optimizer="adam", lr=1e-2, weight_decay=0.0, dropout=0.0,
                     batch_size=64, beta1=0.9)


def sqlite_study(tmp_path: Path, name: str = "art") -> optuna.Study:
    return optuna.create_study(study_name=name, storage=f"sqlite:///{tmp_path}/{name}.db",
                               direction="maximize")


def checkpoint_files(directory: Path) -> list[Path]:
    """Stored artifacts, without the lock file; none for a folder never created."""
    return sorted(directory.glob("[!.]*"))


def finish(study: optuna.Study, saver: ModelSaver, model: torch.nn.Module, value: float) -> int:
    """One trial that trained ``model`` to ``value``, saved through the objective hook."""
    trial = study.ask()
    saver(trial, model, CONFIG, value)
    study.tell(trial, value)
    return trial.number


def test_write_checkpoint_rebuilds_the_model_with_weights_only(tiny: DataBundle,
                                                              tmp_path: Path) -> None:
    model = build_model(CONFIG, tiny.input_shape, tiny.n_classes).eval()
    write_checkpoint(tmp_path / "m.pt", model, CONFIG, tiny.format, {"val_accuracy": 0.5})
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    rebuilt = build_model(TrialConfig.from_dict(loaded["config"]), tuple(loaded["input_shape"]),
                          len(loaded["classes"])).eval()
    rebuilt.load_state_dict(loaded["state_dict"])
    x = torch.rand(4, *tiny.input_shape)
    # Rule: the file alone (config, shape, classes, normalisation) rebuilds the same network.
    assert torch.equal(model(x), rebuilt(x))
    assert loaded["mean"] == list(tiny.mean) and loaded["std"] == list(tiny.std)
    assert loaded["classes"] == list(tiny.classes)


def test_model_saver_best_keeps_only_the_best_so_far(tiny: DataBundle, tmp_path: Path) -> None:
    study = sqlite_study(tmp_path)
    directory = artifact_dir(study.study_name, tmp_path / "artifacts")
    saver = ModelSaver(directory, tiny.format, "best")
    model = build_model(CONFIG, tiny.input_shape, tiny.n_classes)
    # Values of trials 0-4, and the best trial after each one.
    for value, best in zip((0.5, 0.8, 0.7, 0.9, 0.9), (0, 1, 1, 3, 3), strict=True):
        finish(study, saver, model, value)
        metas = get_all_artifact_meta(study)
        # Rule: after every trial exactly one checkpoint exists, and it is the best so far.
        assert len(checkpoint_files(directory)) == 1 and len(metas) == 1
        assert metas[0].filename == f"best-model-trial-{best}.pt"
    assert best_model_record(study)["trial"] == 3  # a tie keeps the earlier trial
    download_artifact(artifact_store=open_store(study.study_name, tmp_path / "artifacts"),
                      artifact_id=metas[0].artifact_id, file_path=str(tmp_path / "best.pt"))
    assert torch.load(tmp_path / "best.pt", weights_only=True)["metrics"]["val_accuracy"] == 0.9


@pytest.mark.parametrize(("mode", "files"), [("all", 3), ("none", 0)])
def test_model_saver_all_and_none(tiny: DataBundle, tmp_path: Path, mode: str, files: int) -> None:
    study = sqlite_study(tmp_path)
    directory = artifact_dir(study.study_name, tmp_path / "artifacts")
    saver = ModelSaver(directory, tiny.format, mode)
    model = build_model(CONFIG, tiny.input_shape, tiny.n_classes)
    for value in (0.5, 0.4, 0.6):
        finish(study, saver, model, value)
    names = [[m.filename for m in get_all_artifact_meta(t, storage=study._storage)]
             for t in study.trials]
    # Rule: "all" attaches each trial's weights to that trial; "none" stores nothing.
    assert len(checkpoint_files(directory)) == files
    assert names == ([[f"model-trial-{n}.pt"] for n in range(3)] if mode == "all" else [[]] * 3)


@pytest.mark.parametrize("mode", ["best", "all"])
def test_saved_models_load_as_checkpoints(tiny: DataBundle, tmp_path: Path, mode: str) -> None:
    # The dashboard's best-model download was once refused by search.predict: the saver wrote
    # its own dict, without the checkpoint marker. One writer now serves both.
    study = sqlite_study(tmp_path)
    directory = artifact_dir(study.study_name, tmp_path / "artifacts")
    model = build_model(CONFIG, tiny.input_shape, tiny.n_classes).eval()
    finish(study, ModelSaver(directory, tiny.format, mode), model, 0.75)
    (saved,) = checkpoint_files(directory)
    loaded = load_checkpoint(saved)
    x = torch.rand(4, *tiny.input_shape)
    # Rule: a saved model (best-model artifact or model-trial-N.pt) is a checkpoint like model.pt.
    assert torch.equal(loaded.model(x), model(x))
    assert loaded.format == tiny.format and loaded.metrics == {"val_accuracy": 0.75}
    assert loaded.config == CONFIG


def test_model_saver_rejects_an_unknown_mode(tiny: DataBundle, tmp_path: Path) -> None:
    # Rule: a bad mode fails at construction and names the value.
    with pytest.raises(ValueError, match="'latest'"):
        ModelSaver(tmp_path, tiny.format, "latest")


def test_objective_hook_saves_only_trained_trials(tiny: DataBundle, tmp_path: Path) -> None:
    study = sqlite_study(tmp_path)
    saver = ModelSaver(artifact_dir("art", tmp_path / "artifacts"), tiny.format, "all")
    study.enqueue_trial({**GOOD, "optimizer": "sgd", "lr": 1e8, "sgd_momentum": 0.99,
                         "sgd_nesterov": False})  # diverges
    study.enqueue_trial(GOOD)
    study.optimize(Objective(tiny, WIDE_LR, epochs=1, seed=0, device=CPU, on_trained=saver),
                   n_trials=2)
    diverged, good = (get_all_artifact_meta(t, storage=study._storage) for t in study.trials)
    # Rule: a failed trial saves nothing; a trained one saves weights that score its value.
    assert diverged == [] and len(good) == 1
    checkpoint = torch.load(saver.directory / good[0].artifact_id, weights_only=True)
    assert checkpoint["metrics"]["val_accuracy"] == study.trials[1].value


def test_upload_report_artifacts_attaches_and_replaces(tmp_path: Path) -> None:
    study = sqlite_study(tmp_path)
    store = open_store(study.study_name, tmp_path / "artifacts")
    (tmp_path / "model.pt").write_bytes(b"weights v1")
    (tmp_path / "report.html").write_text("<h1>v1</h1>")
    upload_report_artifacts(study, store, [tmp_path / "model.pt", tmp_path / "report.html"])
    (tmp_path / "report.html").write_text("<h1>v2</h1>")
    ids = upload_report_artifacts(study, store, [str(tmp_path / "report.html")])
    metas = {m.filename: m for m in get_all_artifact_meta(study)}
    # Rule: both files are study artifacts; uploading one again replaces it, not duplicates it.
    assert sorted(metas) == ["model.pt", "report.html"]
    assert metas["report.html"].mimetype == "text/html" and ids == [metas["report.html"].artifact_id]
    assert store.open_reader(ids[0]).read() == b"<h1>v2</h1>"
    assert len(checkpoint_files(tmp_path / "artifacts" / "art")) == 2


def test_run_save_models_flag(workdir: Path) -> None:
    tiny = ["--epochs", "1", "--config", "tiny.toml", "--quiet", "--pruner", "none"]
    assert main(["--trials", "2", "--study", "dflt", *tiny]) == 0
    assert main(["--trials", "2", "--study", "off", "--save-models", "none", *tiny]) == 0
    default = optuna.load_study(study_name="dflt", storage="sqlite:///studies/dflt.db")
    # Rule: by default the run keeps the best model under studies/artifacts/<study>/; none keeps nothing.
    assert [m.filename for m in get_all_artifact_meta(default)] == [
        f"best-model-trial-{default.best_trial.number}.pt"]
    assert len(checkpoint_files(workdir / "studies" / "artifacts" / "dflt")) == 1
    assert checkpoint_files(workdir / "studies" / "artifacts" / "off") == []
