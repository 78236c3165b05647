from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import torch
from optuna.artifacts import get_all_artifact_meta

import search.data.registry
from model_space import TrialConfig
from search import report, retrain, run
from search.data.options import DataOptions
from search.data.registry import load_test_split
from search.results.best_config import BestConfig
from search.results.checkpoint import load_checkpoint
from search.training.loop import Normalizer, predict
from tests.helpers.configs import TINY_SPACE_TOML

CONFIG = TrialConfig(widths=(8,), optimizer="adam", lr=1e-2, weight_decay=0.0, dropout=0.0,
                     batch_size=64, beta1=0.9)

STUDY = "tiny-report"
FILES = ("best_config.json", "metrics.json", "model.pt", "model.pt2", "model.onnx", "report.md",
         "report.html", "plots/optimization_history.png", "plots/intermediate_values.png",
         "plots/param_importances.png", "plots/parallel_coordinate.png", "plots/confusion_matrix.png")


@dataclass
class Reported:
    root: Path  # the working directory: studies/ and reports/ are inside
    out: Path  # reports/<study>
    test_split_calls: dict[str, int]  # phase -> calls to load_test_split


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reported]:
    """A real 4-trial search (the baseline first), then the real report with 2 seeds.

    load_test_split is spied on."""
    root = tmp_path_factory.mktemp("reported")
    (root / "tiny.toml").write_text(TINY_SPACE_TOML)
    calls = {"search": 0, "report": 0}
    phase = ["search"]
    real = search.data.registry.load_test_split

    def spy(options: DataOptions) -> search.data.registry.Split:
        calls[phase[0]] += 1
        return real(options)

    old = Path.cwd()
    os.chdir(root)
    with pytest.MonkeyPatch.context() as patch:
        # Patch every module that bound the name, so a by-name import cannot slip past the spy.
        for module in [m for name, m in sys.modules.items() if name.startswith("search")]:
            if getattr(module, "load_test_split", None) is real:
                patch.setattr(module, "load_test_split", spy)
        try:
            assert run.main(["--trials", "4", "--epochs", "2", "--config", "tiny.toml",
                             "--study", STUDY, "--baseline", "--quiet"]) == 0
            phase[0] = "report"
            assert report.main(["--study", STUDY, "--seeds", "2", "--device", "cpu"]) == 0
        finally:
            os.chdir(old)
    yield Reported(root, root / "reports" / STUDY, calls)


def test_report_attaches_model_and_html_to_the_study(reported: Reported) -> None:
    # Rule: the report uploads model.pt and report.html as study artifacts for the dashboard.
    study = optuna.load_study(study_name=STUDY,
                              storage=f"sqlite:///{reported.root / 'studies' / (STUDY + '.db')}")
    names = {m.filename for m in get_all_artifact_meta(study)}
    assert {"model.pt", "report.html"} <= names


def test_search_never_loads_test_split(reported: Reported) -> None:
    # Rule: a real search never calls load_test_split; the report does (so the spy works).
    assert reported.test_split_calls["search"] == 0
    assert reported.test_split_calls["report"] >= 1


def test_report_writes_every_file(reported: Reported) -> None:
    # Rule: the report writes the config, models, metrics, both reports and every plot as PNG.
    missing = [name for name in FILES if not (reported.out / name).is_file()]
    assert missing == []
    page = (reported.out / "report.html").read_text()
    # Rule: the HTML is self-contained: every plot embedded, none linked.
    assert page.count("data:image/png;base64,") == 5
    assert 'src="plots/' not in page
    text = (reported.out / "report.md").read_text()
    for needle in ("test accuracy", "epochs spent", "search wall time", "Top 10", "(plots/"):
        assert needle in text
    # Rule: the summary says how the best trial compares with the recipe the search began with.
    assert "| textbook recipe | trial #0, " in text


def test_report_metrics_and_config_hold_what_retraining_needs(reported: Reported) -> None:
    metrics = json.loads((reported.out / "metrics.json").read_text())
    config = json.loads((reported.out / "best_config.json").read_text())
    # Rule: metrics.json has per-seed test accuracy, mean, std, val accuracy, params and seconds.
    assert [s["seed"] for s in metrics["per_seed"]] == [0, 1]
    assert metrics["test_accuracy_mean"] == pytest.approx(
        sum(s["test_accuracy"] for s in metrics["per_seed"]) / 2)
    assert metrics["test_accuracy_std"] >= 0 and metrics["n_params"] > 0 and metrics["train_seconds"] > 0
    assert metrics["val_accuracy"] == config["provenance"]["val_accuracy"]
    # Rule: model.onnx gives the saved model's answers on every test image under onnxruntime.
    assert metrics["onnx"]["ok"] and metrics["onnx"]["images"] == metrics["n_test"]
    # Rule: best_config.json carries data, model, budget and provenance, not the search space.
    assert config["format"] == "cnn-search-best-config/2"
    assert config["data"]["dataset"] == "digits" and "space" not in config
    assert config["epochs"] == 2 and config["model"]["batch_size"] == 64 and config["seed"] == 0
    # Rule: no value is stored twice (version 1 kept epochs, seed and batch_size in two places).
    assert set(config) == {"format", "data", "epochs", "seed", "model", "provenance"}
    assert not {"epochs", "seed", "batch_size"} & set(config["data"])
    assert {"study", "trial", "optuna_version", "torch_version"} <= set(config["provenance"])


def _test_predictions(model_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    checkpoint = load_checkpoint(model_path)
    test = load_test_split(DataOptions())
    normalize = Normalizer.from_stats(checkpoint.format.mean, checkpoint.format.std,
                                      torch.device("cpu"))
    return predict(checkpoint.model, test.x, normalize), test.y


def test_checkpoint_loads_weights_only_and_rebuilds(reported: Reported) -> None:
    raw = torch.load(reported.out / "model.pt", weights_only=True)
    # Rule: the checkpoint is plain data that describes itself.
    assert {"state_dict", "config", "input_shape", "classes", "mean", "std", "metrics"} <= set(raw)
    predictions, labels = _test_predictions(reported.out / "model.pt")
    accuracy = (predictions == labels).float().mean().item()
    # Rule: the rebuilt model is the first seed's: it scores exactly metrics.json's seed-0 accuracy.
    metrics = json.loads((reported.out / "metrics.json").read_text())
    assert accuracy == metrics["per_seed"][0]["test_accuracy"]


# Runs with `python -I` in an empty folder, and refuses any import of this project's packages.
EXPORTED_SCRIPT = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("search", "model_space"):
            raise ImportError("this process must not import " + name)
sys.meta_path.insert(0, Block())
import torch
x = torch.load("test_x.pt", weights_only=True)
program = torch.export.load(sys.argv[1])
torch.save(program.module()(x).argmax(1), "predictions.pt")
"""


def test_exported_program_predicts_like_checkpoint_without_project(reported: Reported,
                                                                   tmp_path: Path) -> None:
    expected, _ = _test_predictions(reported.out / "model.pt")
    torch.save(load_test_split(DataOptions()).x, tmp_path / "test_x.pt")
    (tmp_path / "load.py").write_text(EXPORTED_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "load.py", str(reported.out / "model.pt2")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # Rule: model.pt2 alone, in a process without this project, predicts exactly as model.pt.
    assert torch.equal(torch.load(tmp_path / "predictions.pt", weights_only=True), expected)


def test_retrain_cli_reproduces_seed0_test_accuracy(reported: Reported, tmp_path: Path) -> None:
    code = retrain.main([str(reported.out / "best_config.json"), "--seeds", "1", "--device", "cpu",
                         "--out", str(tmp_path)])
    assert code == 0
    again = json.loads((tmp_path / "metrics.json").read_text())
    first = json.loads((reported.out / "metrics.json").read_text())
    # Rule: retraining seed 0 from best_config.json alone, on the CPU, gives the same test accuracy.
    assert again["per_seed"][0]["test_accuracy"] == first["per_seed"][0]["test_accuracy"]
    assert {p.name for p in tmp_path.glob("model.*")} == {"model.pt", "model.pt2", "model.onnx"}


# python -c: the retrain CLI as if the deploy extra were not installed.
WITHOUT_ONNXRUNTIME = """
import sys
sys.modules["onnxruntime"] = None  # import fails and find_spec says None, as when not installed
from search.retrain import main
sys.exit(main(sys.argv[1:]))
"""


def test_retrain_without_deploy_extra_skips_onnx_and_drops_the_old_one(reported: Reported,
                                                                        tmp_path: Path) -> None:
    shutil.copytree(reported.out, tmp_path, dirs_exist_ok=True)
    assert (tmp_path / "model.onnx").is_file()  # the report's, from a model about to be replaced
    done = subprocess.run([sys.executable, "-c", WITHOUT_ONNXRUNTIME, str(tmp_path / "best_config.json"),
                           "--seeds", "1", "--device", "cpu"], capture_output=True, text=True,
                          timeout=300)
    # Rule: without the extra the retrain still succeeds; metrics.json and the terminal say what
    # to install; the earlier run's model.onnx is removed, never left beside the new model.pt.
    assert done.returncode == 0, done.stderr
    onnx = json.loads((tmp_path / "metrics.json").read_text())["onnx"]
    assert set(onnx) == {"skipped"} and "[deploy]" in onnx["skipped"]
    assert onnx["skipped"] in done.stdout
    assert not (tmp_path / "model.onnx").exists() and (tmp_path / "model.pt2").is_file()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("module", "sig"), [("search.report", signal.SIGTERM),
                                             ("search.retrain", signal.SIGINT)])
def test_report_or_retrain_stopped_part_way_leaves_the_last_report_whole(
        reported: Reported, tmp_path: Path, module: str, sig: int) -> None:
    root = tmp_path / "copy"  # a copy: the other tests read the module's report
    shutil.copytree(reported.root, root)
    out = root / "reports" / STUDY
    before = _snapshot(out)
    target = ["--study", STUDY] if module == "search.report" else [str(out / "best_config.json")]
    # Many seeds: the retrain runs long enough for the signal to land inside it.
    proc = subprocess.Popen([sys.executable, "-m", module, *target, "--seeds", "500",
                             "--device", "cpu"], cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    # The staging folder appears before the retrain starts, and is filled only at its end.
    while not list((root / "reports").glob(f".{STUDY}.partial-*")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    # Rule: Ctrl-C or SIGTERM stops a report or retrain with one line and exit 130; the folder
    # keeps the last finished report, byte for byte, and no half-written folder is left.
    assert proc.returncode == 130, err
    assert err.strip() == f"python -m {module}: error: interrupted"
    assert _snapshot(out) == before
    # Finished seeds wait beside it (hidden), for the next run to go on from.
    assert set(p.name for p in (root / "reports").iterdir()) <= {STUDY, f".{STUDY}.seeds"}


def _study_with(root: Path, names: tuple[str, ...], pruned_only: bool = False) -> str:
    import optuna

    from search.study.spec import StudySpec
    from search.study.storage import open_storage
    from search.study.studies import load_or_create

    url = f"sqlite:///{root / 'several.db'}"
    storage = open_storage(url)
    for name in names:
        study = load_or_create(name, storage, StudySpec())
        if pruned_only:
            study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
    return url


def test_report_unknown_study_lists_the_studies_there(workdir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    url = _study_with(workdir, ("alpha", "beta"))
    code = report.main(["--study", "gamma", "--storage", url])
    err = capsys.readouterr().err
    # Rule: an unknown study is refused (exit 2) in one line that lists the studies in that storage.
    assert code == 2
    assert err.count("\n") == 1 and "'gamma'" in err and "alpha, beta" in err
    assert not (workdir / "reports").exists()


@pytest.mark.filterwarnings("ignore:Heartbeat")  # the test asks and tells outside optimize()
def test_report_study_without_complete_trial_says_so(workdir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    url = _study_with(workdir, ("early",), pruned_only=True)
    code = report.main(["--study", "early", "--storage", url])
    err = capsys.readouterr().err
    # Rule: no complete trial -> a clear one-line message, exit 2, and nothing written.
    assert code == 2
    assert err.count("\n") == 1 and "no complete trial" in err and "1 pruned" in err
    assert not (workdir / "reports").exists()


def test_report_missing_storage_is_not_created(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = report.main(["--study", "digits"])
    # Rule: reporting on a storage file that does not exist fails and does not create it.
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not (workdir / "studies" / "digits.db").exists()


@pytest.mark.parametrize("content, needle", [
    ("{not json", "is not a JSON file"),
    ('{"format": "something-else"}', "is not a best_config.json"),
    ('{"format": "cnn-search-best-config/1", "spec": {"dataset": "digits"}}', "'model' must be"),
    ('{"format": "cnn-search-best-config/1", "spec": {"epochs": 0}, "model": {}}', "epochs"),
    # A hand-edited version 1 file: its top-level copy of epochs won, unchecked, and a retrain
    # of 0 epochs replaced a good model with one at chance accuracy.
    ('{"format": "cnn-search-best-config/1", "spec": {"epochs": 8}, "epochs": 0, "model": {}}',
     "epochs must be an integer >= 1 but got 0"),
    ('{"format": "cnn-search-best-config/2", "data": {}, "epochs": 0, "seed": 0, "model": {}}',
     "epochs must be an integer >= 1 but got 0"),
    ('{"format": "cnn-search-best-config/2", "data": {"datset": "x"}, "epochs": 1, "seed": 0, '
     '"model": {}}', "unknown data key 'datset'"),
    ('{"format": "cnn-search-best-config/2", "data": {}, "epochs": 1, "seed": 0, "model": {}}',
     "invalid model"),
    ('{"format": "cnn-search-best-config/9"}', "version '9'; this cnn-search reads versions 1, 2"),
])
def test_retrain_bad_config_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str],
                                        content: str, needle: str) -> None:
    (workdir / "bad.json").write_text(content)
    code = retrain.main(["bad.json", "--seeds", "1"])
    err = capsys.readouterr().err
    # Rule: a config that is not ours, or not whole, is refused in one line with exit 2.
    assert code == 2 and err.count("\n") == 1 and needle in err


@pytest.mark.parametrize("options, expected", [
    (DataOptions(train_subset=500, split_seed=3), DataOptions(split_seed=3)),
    (DataOptions(split_seed=3), DataOptions(split_seed=3)),
])
def test_retrain_full_data_undoes_a_search_subset(options: DataOptions,
                                                  expected: DataOptions) -> None:
    # Rule: the final retrain uses all of train+val even when the search trained on a subset.
    best = BestConfig(data=options, config=CONFIG, epochs=1, seed=0, provenance={})
    assert best.full_data == expected


def test_report_stopped_between_seeds_goes_on_with_the_seeds_not_finished(
        reported: Reported, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(reported.root, root)
    seeds = root / "reports" / f".{STUDY}.seeds"
    args = [sys.executable, "-m", "search.report", "--study", STUDY, "--seeds", "4",
            "--device", "cpu"]
    proc = subprocess.Popen(args, cwd=root, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (seeds / "seed-1.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    kept = {p.name: json.loads(p.read_text()) for p in seeds.glob("seed-*.json")}
    assert {"seed-0.json", "seed-1.json"} <= set(kept)
    again = subprocess.run(args, cwd=root, text=True, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr
    metrics = json.loads((root / "reports" / STUDY / "metrics.json").read_text())
    # Rule: the seeds finished before the stop are not trained again (their rows, timings
    # included, are the ones kept), the others are, and nothing is left beside the report.
    assert [row["seed"] for row in metrics["per_seed"]] == [0, 1, 2, 3]
    assert metrics["per_seed"][0] == kept["seed-0.json"]
    assert metrics["per_seed"][1] == kept["seed-1.json"]
    assert not seeds.exists()
