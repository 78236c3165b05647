from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch

from model_space import TrialConfig, build_model
from search.dashboard import StudyArtifactStore, main
from search.data.registry import DataBundle
from search.results.artifacts import ARTIFACT_ROOT, artifact_dir
from search.results.checkpoint import load_checkpoint
from search.results.model_saver import ModelSaver
from search.study.note import study_note, write_study_note
from search.study.spec import StudySpec
from search.study.storage import default_storage, open_storage
from search.study.studies import load_or_create
from tests.helpers.ports import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CONFIG = TrialConfig(widths=(8,), optimizer="adam", lr=1e-2, weight_decay=0.0, dropout=0.0,
                     batch_size=64, beta1=0.9)
N_TRIALS = 4


def finished_study(name: str, data: DataBundle, root: Path = Path()) -> optuna.Study:
    """A study in root/studies/<name>.db shaped like a search: user attrs, epochs, a best model."""
    (root / "studies").mkdir(exist_ok=True)
    url = default_storage(name, root / "studies")
    study = load_or_create(name, open_storage(url), StudySpec())
    write_study_note(study, url, StudySpec(), data)
    saver = ModelSaver(artifact_dir(name, root / ARTIFACT_ROOT), data.format, "best")
    model = build_model(CONFIG, data.input_shape, data.n_classes)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        for epoch in range(3):
            trial.report(lr * (epoch + 1), step=epoch + 1)
        for key, value in dict(n_params=1010, device="cpu", epochs_run=3,
                               seconds_per_epoch=0.1, train_loss=0.5).items():
            trial.set_user_attr(key, value)
        saver(trial, model, CONFIG, lr)
        return lr

    study.optimize(objective, n_trials=N_TRIALS)
    return study


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           tiny: DataBundle) -> Iterator[tuple[str, optuna.Study]]:
    """A finished study and ``python -m search.dashboard`` serving it: (base URL, study)."""
    root = tmp_path_factory.mktemp("served")
    study = finished_study("dash", tiny, root)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "search.dashboard", "--study", "dash",
                               "--port", str(port)], cwd=root, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        first_line = server.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/dashboard/studies/{study._study_id}" in first_line, first_line
        wait_until_up(base)
        yield base, study
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_until_up(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/meta", timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def test_dashboard_serves_study_trials_note_and_best_model(served: tuple[str, optuna.Study],
                                                            tmp_path: Path) -> None:
    base, study = served
    detail = get_json(f"{base}/api/studies/{study._study_id}")
    attrs = {a["key"] for a in detail["trials"][0]["user_attrs"]}
    # Rule: the API shows the named objective, every trial with its user attrs, and the note.
    assert detail["name"] == "dash" and detail["objective_names"] == ["val_accuracy"]
    assert len(detail["trials"]) == N_TRIALS
    assert {"n_params", "device", "epochs_run", "seconds_per_epoch", "train_loss"} <= attrs
    assert "python -m search.report --study dash" in detail["note"]["body"]
    (artifact,) = detail["artifacts"]
    assert artifact["filename"] == f"best-model-trial-{study.best_trial.number}.pt"
    # Rule: the best model downloads from the dashboard and loads with weights_only=True.
    with urllib.request.urlopen(f"{base}/artifacts/{study._study_id}/{artifact['artifact_id']}",
                                timeout=30) as response:
        (tmp_path / "best.pt").write_bytes(response.read())
    checkpoint = torch.load(tmp_path / "best.pt", weights_only=True)
    assert checkpoint["config"] == CONFIG.to_dict()
    assert checkpoint["metrics"]["val_accuracy"] == study.best_value
    # Rule: the download is a checkpoint like model.pt: load_checkpoint (search.predict's reader)
    # rebuilds it (it once lacked the checkpoint marker and was refused).
    assert load_checkpoint(tmp_path / "best.pt").config == CONFIG


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"Chromium not installed at {CHROMIUM} (apt-get install chromium)")
def test_dashboard_study_page_in_headless_chromium(served: tuple[str, optuna.Study],
                                                   tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, study = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/dashboard/studies/{study._study_id}")
            page.get_by_text("Study Artifacts").wait_for(timeout=60_000)
            text = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "study.png"))
        finally:
            browser.close()
    # Rule: the rendered study page names the study, its objective, each trial and the best model.
    assert "dash (id=" in text and "val_accuracy" in text
    assert all(f"trial #{n}" in text for n in range(N_TRIALS))
    assert f"best-model-trial-{study.best_trial.number}.pt" in text


def test_dashboard_port_in_use_is_a_one_line_error(workdir: Path, tiny: DataBundle,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    finished_study("busy", tiny)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code = main(["--study", "busy", "--port", str(port)])
    err = capsys.readouterr().err
    # Rule: a taken port exits 2 with one line naming it, not a traceback.
    assert code == 2 and err.count("\n") == 1
    assert f"127.0.0.1:{port}: port in use" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--study", "missing"], "no study storage at 'sqlite:///studies/missing.db'"),
    (["--study", "../up"], "study name '../up'"),
    (["--storage", "sqlite:///studies/none.db"], "no study storage"),
    (["--port", "70000"], "expected a port number 1-65535 but got '70000'"),
    (["--study", "a", "--storage", "sqlite:///x.db"], "not allowed with argument"),
])
def test_dashboard_bad_input_is_refused(workdir: Path, argv: list[str], message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse errors exit from inside parse_args
        code = exit_.code
    err = capsys.readouterr().err
    # Rule: bad input exits 2 with one line naming the bad value, and creates no storage.
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (workdir / "studies").exists()


def test_dashboard_unknown_study_in_existing_storage(workdir: Path, tiny: DataBundle,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    finished_study("here", tiny)
    shutil.copy("studies/here.db", "studies/other.db")
    # Rule: a storage without the named study is refused, naming the study.
    assert main(["--study", "other"]) == 2
    assert "study 'other' not found" in capsys.readouterr().err


def test_study_artifact_store_reads_any_study_folder_and_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    (root / "a").mkdir(parents=True)
    (root / "a" / "id-1").write_bytes(b"one")
    (tmp_path / "secret").write_bytes(b"no")
    store = StudyArtifactStore(root, root / "b")
    with (root / "a" / "id-1").open("rb") as source:
        store.write("id-2", source)
    # Rule: ids resolve in any study folder; uploads land in the write folder; nothing escapes root.
    assert store.open_reader("id-1").read() == b"one"
    assert (root / "b" / "id-2").read_bytes() == b"one"
    for bad in ("../secret", "a/id-1", ".lock", ""):
        with pytest.raises(optuna.artifacts.exceptions.ArtifactNotFound):
            store.open_reader(bad)
    store.remove("id-1")
    assert not (root / "a" / "id-1").exists()


def test_study_note_lists_data_splits_space_and_export(tiny: DataBundle) -> None:
    note = study_note("mine", "postgresql://u:pw@db/s", StudySpec(), tiny)
    # Rule: the note names the dataset, split sizes, every space key and the export command,
    # with the storage password masked.
    assert "`digits`: 1x8x8 images, 10 classes" in note
    assert f"train {len(tiny.train)}" in note and f"validation {len(tiny.val)}" in note
    assert all(f"| `{key}` |" in note for key in StudySpec().space.to_dict())
    assert "python -m search.report --study mine --storage 'postgresql://u:***@db/s'" in note
    assert "pw" not in note
    # Rule: the note says whether the first trial is the textbook recipe.
    assert "user attr `baseline`" in note
    assert "baseline" not in study_note("mine", "sqlite:///x.db", StudySpec(baseline=False), tiny)
