"""A short search from the CLI on every kind of dataset, on files the tests write."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from search.run import main
from search.schema import SPEC_ATTR
from search.study.spec import MAX_DEFAULT_EPOCHS, StudySpec, default_epochs
from tests.helpers.dataset_files import write_cifar10, write_cifar100, write_mnist, write_tree

TINY = ["--trials", "2", "--epochs", "1", "--config", "tiny.toml", "--quiet"]

# --dataset value -> (writer into the working directory, study name, default augment)
KINDS = {
    "mnist": (lambda d: write_mnist(d / "data", "MNIST"), "mnist", False),
    "fashion-mnist": (lambda d: write_mnist(d / "data", "FashionMNIST"), "fashion-mnist", False),
    "cifar10": (lambda d: write_cifar10(d / "data"), "cifar10", True),
    "cifar100": (lambda d: write_cifar100(d / "data"), "cifar100", True),
    "photos/My Pets": (lambda d: write_tree(d / "photos" / "My Pets", size=32), "My-Pets", True),
}


def stored(workdir: Path, name: str, trials: int = 2) -> dict:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{workdir}/studies/{name}.db")
    assert len(study.get_trials()) == trials
    return json.loads(study.user_attrs[SPEC_ATTR])


@pytest.mark.parametrize("dataset", list(KINDS))
def test_run_cli_short_search_on_each_dataset_kind(workdir: Path, dataset: str) -> None:
    writer, name, augment = KINDS[dataset]
    writer(workdir)
    assert main(["--dataset", dataset, *TINY]) == 0
    spec = stored(workdir, name)
    # Rule: every kind searches end to end; the study is named after the dataset (a tree: its
    # folder, made safe), and stores the augmentation the data called for.
    # A tree is stored by its resolved path (a study is pinned to its data); a name as it is.
    expected = str((workdir / dataset).resolve()) if "/" in dataset else dataset
    assert spec["dataset"] == expected and spec["space"]["augment"] == [augment]
    assert StudySpec.from_flat(spec).data.dataset == expected
    # Rule: without --pruner, data other than the bundled digits gets Hyperband (measured).
    assert spec["pruner"] == "hyperband"
    # Rule: and, without --no-baseline, the textbook recipe as its first trial (measured).
    assert spec["baseline"] is True
    first = optuna.load_study(study_name=name,
                              storage=f"sqlite:///{workdir}/studies/{name}.db").trials[0]
    assert first.user_attrs["baseline"] is True


def test_run_cli_train_subset_and_image_size_are_stored(workdir: Path) -> None:
    write_cifar10(workdir / "data")
    assert main(["--dataset", "cifar10", "--train-subset", "30", "--image-size", "16", *TINY]) == 0
    spec = stored(workdir, "cifar10")
    # Rule: the stored spec holds what reloads the same data, including the search subset.
    assert spec["train_subset"] == 30 and spec["image_size"] == 16 and spec["data_dir"] == "data"
    assert "download" not in spec


def test_run_cli_pruner_asked_or_stored_wins_over_the_data_default(workdir: Path) -> None:
    write_cifar10(workdir / "data")
    assert main(["--dataset", "cifar10", "--pruner", "sha", *TINY]) == 0
    assert stored(workdir, "cifar10")["pruner"] == "sha"
    # Rule: a resumed study keeps the pruner it was created with.
    assert main(["--dataset", "cifar10", *TINY[:1], "4", *TINY[2:]]) == 0
    assert stored(workdir, "cifar10", trials=4)["pruner"] == "sha"
    assert main(["--dataset", "digits", "--study", "d", *TINY]) == 0
    assert stored(workdir, "d")["pruner"] == "sha"
    assert stored(workdir, "d")["baseline"] is False
    assert main(["--dataset", "cifar10", "--study", "c", "--no-baseline", *TINY]) == 0
    assert stored(workdir, "c")["baseline"] is False


def test_run_cli_small_training_set_gets_longer_trials_unless_epochs_are_asked(
        workdir: Path) -> None:
    # Rule: a new study on little data trains each trial for about MIN_TRIAL_STEPS steps (here
    # 48 training images, one batch per epoch: the 30-epoch cap); --epochs or a stored study wins.
    write_cifar10(workdir / "data")
    run = ["--dataset", "cifar10", "--trials", "1", "--config", "tiny.toml", "--quiet"]
    assert main(run) == 0
    assert stored(workdir, "cifar10", trials=1)["epochs"] == MAX_DEFAULT_EPOCHS
    trial = optuna.load_study(study_name="cifar10",
                              storage=f"sqlite:///{workdir}/studies/cifar10.db").trials[0]
    assert trial.user_attrs["epochs_run"] == MAX_DEFAULT_EPOCHS  # alone, never pruned
    assert main([*run[:3], "2", *run[4:]]) == 0  # resumed: the stored epochs stay
    assert stored(workdir, "cifar10")["epochs"] == MAX_DEFAULT_EPOCHS
    assert main(["--study", "asked", "--epochs", "3", *run]) == 0
    assert stored(workdir, "asked", trials=1)["epochs"] == 3


@pytest.mark.parametrize(("dataset", "n_train", "epochs"), [
    ("photos", 6000, 15),     # 94 steps per epoch at batch 64: 15 epochs make 1,410 steps
    ("photos", 3200, 28),     # 50 steps per epoch: 28 epochs make 1,400
    ("photos", 12000, 8),     # 188 steps per epoch: 8 epochs are already 1,504
    ("photos", 2000, 30),     # 32 steps per epoch: capped at 30 epochs
    ("digits", 1078, 8),      # measured: 8 is enough on the bundled digits
])
def test_default_epochs_follow_the_training_set_size(dataset: str, n_train: int,
                                                     epochs: int) -> None:
    spec = StudySpec.from_flat({"dataset": dataset})  # batch sizes 32, 64, 128: middle 64
    assert default_epochs(spec, {}, None, n_train).epochs == epochs
    assert default_epochs(spec, {"epochs": 8}, None, n_train).epochs == 8
    assert default_epochs(spec, {}, spec.to_flat(), n_train).epochs == 8  # a stored study


def test_run_cli_augment_set_in_spec_wins(workdir: Path) -> None:
    write_cifar10(workdir / "data")
    (workdir / "aug.toml").write_text((workdir / "tiny.toml").read_text() + "augment = [false, true]\n")
    args = ["--dataset", "cifar10", "--trials", "2", "--epochs", "1", "--config", "aug.toml", "--quiet"]
    assert main(args) == 0
    # Rule: a spec that sets space.augment (here: searched) overrides the data's default.
    assert stored(workdir, "cifar10")["space"]["augment"] == [False, True]


def test_run_cli_photos_get_the_photo_space_where_the_spec_is_silent(workdir: Path) -> None:
    write_cifar10(workdir / "data")
    assert main(["--dataset", "cifar10", "--trials", "1", "--epochs", "1", "--config",
                 "tiny.toml", "--quiet"]) == 0
    space = stored(workdir, "cifar10", trials=1)["space"]
    # Rule: on colour photos of 32 px, the fields the spec does not set come from PHOTO_SPACE;
    # those it sets (tiny.toml: depth, widths, batch sizes) stay as asked.
    assert space["convs"] == [1, 2, 3] and space["schedules"] == ["cosine", "onecycle"]
    assert space["tta_flip"] == [False, True] and space["augment"] == [True]
    assert space["widths"] == [8, 16] and space["batch_sizes"] == [64]
    # Rule: the first trial is the photo recipe, fitted into that space.
    trial = optuna.load_study(study_name="cifar10",
                              storage=f"sqlite:///{workdir}/studies/cifar10.db").trials[0]
    assert (trial.params["convs"], trial.params["schedule"], trial.params["lr"]) == (2, "onecycle", 0.2)
    # Rule: digits keep the small space: one conv per block, cosine only, no augmentation.
    assert main(["--trials", "1", "--epochs", "1", "--quiet"]) == 0
    digits = stored(workdir, "digits", trials=1)["space"]
    assert (digits["convs"], digits["schedules"], digits["augment"]) == ([1], ["cosine"], [False])


def test_run_cli_missing_dataset_is_one_line_and_creates_no_study(workdir: Path, capsys) -> None:
    code = main(["--dataset", "cifar10", "--data-dir", "nowhere", *TINY])
    err = capsys.readouterr().err
    # Rule: one line naming the expected folder and --download, exit 2, no study file.
    assert code == 2 and err.count("\n") == 1
    assert "nowhere/cifar-10-batches-py" in err and "--download" in err
    assert not list(workdir.glob("studies/*.db"))


STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.stem)
def test_study_files_are_valid_specs_named_after_their_dataset(path: Path) -> None:
    from search.study.spec import read_toml

    spec, run = read_toml(path)
    # Rule: every tracked study spec loads, and studies/<name>.toml searches dataset <name>.
    assert StudySpec.from_flat(spec).data.dataset == path.stem and run["trials"] >= 1


def test_run_cli_cifar10_study_file_runs_with_overrides(workdir: Path) -> None:
    write_cifar10(workdir / "data", per_batch=40)
    args = ["--config", str(STUDIES / "cifar10.toml"), "--train-subset", "20", "--epochs", "1",
            "--trials", "2", "--quiet"]
    assert main(args) == 0
    spec = stored(workdir, "cifar10")
    # Rule: the tracked spec runs as is; flags override its budget and land in the stored spec.
    assert spec["train_subset"] == 20 and spec["epochs"] == 1 and spec["space"]["augment"] == [True]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--dataset", "cifar10", "--image-size", "2"], "image_size"),
        (["--dataset", "cifar10", "--train-subset", "1"], "train_subset"),
        (["--dataset", "photos/none"], "photos/none"),
        (["--train-subset", "zero"], "zero"),
    ],
)
def test_run_cli_bad_data_flags_are_one_line_exit_2(workdir: Path, capsys, args: list[str],
                                                   named: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main([*args, "--quiet"]))
    err = capsys.readouterr().err
    # Rule: a bad data flag is one line naming it, exit 2, and no study file.
    assert exit_info.value.code == 2 and named in err and err.strip().count("\n") == 0
    assert not list(workdir.glob("studies/*.db"))
