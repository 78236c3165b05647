from __future__ import annotations

from pathlib import Path

import pytest

from search.results.staging import staged


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def last_run(tmp_path: Path) -> Path:
    final = tmp_path / "reports" / "study"
    (final / "plots").mkdir(parents=True)
    (final / "model.pt").write_text("old model")
    (final / "plots" / "old.png").write_text("old plot")
    (final / "notes.txt").write_text("the user's own")
    return final


def test_staged_files_replace_the_last_run_and_keep_foreign_files(last_run: Path) -> None:
    with staged(last_run) as out:
        # Rule: nothing reaches the folder while the run is still writing.
        assert out.parent == last_run.parent and out != last_run
        (out / "model.pt").write_text("new model")
        (out / "plots").mkdir()
        (out / "plots" / "new.png").write_text("new plot")
        assert (last_run / "model.pt").read_text() == "old model"
    # Rule: the run's files replace the last run's; its folders replace theirs whole; a file the
    # run does not write is kept; no staging folder is left behind.
    assert _tree(last_run) == {"model.pt": "new model", "notes.txt": "the user's own",
                               "plots/new.png": "new plot"}
    assert [p.name for p in last_run.parent.iterdir()] == ["study"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_staged_run_that_stops_leaves_the_last_run_whole(last_run: Path,
                                                          stop: type[BaseException]) -> None:
    before = _tree(last_run)
    with pytest.raises(stop), staged(last_run) as out:
        (out / "model.pt").write_text("half a model")
        raise stop()
    # Rule: a run stopped part-way changes nothing and leaves no staging folder.
    assert _tree(last_run) == before
    assert [p.name for p in last_run.parent.iterdir()] == ["study"]


def test_staged_creates_a_missing_folder(tmp_path: Path) -> None:
    final = tmp_path / "reports" / "new-study"
    with staged(final) as out:
        (out / "metrics.json").write_text("{}")
    assert _tree(final) == {"metrics.json": "{}"}


def test_staged_owned_file_not_written_again_is_removed(last_run: Path) -> None:
    (last_run / "model.onnx").write_text("old run's export")
    with staged(last_run, owned=("model.onnx", "notes.txt")) as out:
        (out / "model.pt").write_text("new model")
        (out / "notes.txt").write_text("new notes")
    # Rule: an owned file this run did not write goes (it would be taken for this run's model);
    # one it wrote replaces the old; files it does not own are kept.
    assert _tree(last_run) == {"model.pt": "new model", "notes.txt": "new notes",
                               "plots/old.png": "old plot"}
