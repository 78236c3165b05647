from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model_space import TrialConfig, build_model
from search import predict
from search.data.imagefolder import load_tree
from search.data.images import read_image
from search.data.registry import DataBundle
from search.results.checkpoint import load_checkpoint, write_checkpoint
from search.training.loop import Normalizer
from search.training.loop import predict as predict_indices
from tests.helpers.dataset_files import bomb_png, huge_jpeg

CONFIG = TrialConfig(widths=(8,), optimizer="adam", lr=1e-3, weight_decay=0.0, dropout=0.0,
                     batch_size=64)


@pytest.fixture()
def model_path(tmp_path: Path, digits: DataBundle) -> Path:
    """An untrained but real checkpoint for the digits' shape, classes and statistics."""
    torch.manual_seed(0)
    model = build_model(CONFIG, digits.input_shape, digits.n_classes)
    path = tmp_path / "model.pt"
    write_checkpoint(path, model, CONFIG, digits.format)
    return path


def _write_images(folder: Path, digits: DataBundle) -> dict[str, torch.Tensor]:
    """Gray PNGs at the model's size and RGB JPEGs four times larger; name -> the original image."""
    folder.mkdir()
    written = {}
    for i in range(3):
        image = digits.val.x[i, 0].numpy()
        Image.fromarray(image, mode="L").save(folder / f"gray{i}.png")
        written[f"gray{i}.png"] = digits.val.x[i]
        rgb = np.stack([image] * 3, axis=-1)
        Image.fromarray(rgb).resize((32, 32)).save(folder / f"rgb{i}.JPG", quality=95)
    return written


def _lines(out: str) -> dict[str, tuple[str, float]]:
    rows = [line.split("\t") for line in out.strip().splitlines()]
    return {Path(path).name: (label, float(p)) for path, label, p in rows}


def test_predict_png_and_jpeg_files_and_folders(model_path: Path, tmp_path: Path, digits: DataBundle,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    written = _write_images(tmp_path / "images", digits)
    assert predict.main([str(model_path), str(tmp_path / "images")]) == 0
    lines = _lines(capsys.readouterr().out)
    # Rule: every PNG and JPEG in the folder (any case of suffix) gets a label and a probability.
    assert sorted(lines) == sorted([*written, "rgb0.JPG", "rgb1.JPG", "rgb2.JPG"])
    assert all(label in digits.classes and 0 < p <= 1 for label, p in lines.values())
    checkpoint = load_checkpoint(model_path)
    normalize = Normalizer.from_stats(checkpoint.format.mean, checkpoint.format.std,
                                      torch.device("cpu"))
    expected = predict_indices(checkpoint.model, torch.stack(list(written.values())), normalize)
    # Rule: a gray PNG already at the input size is classified exactly as the raw tensor is.
    assert [lines[name][0] for name in written] == [digits.classes[i] for i in expected.tolist()]


def test_predict_unreadable_image_is_named_and_skipped(model_path: Path, tmp_path: Path,
                                                       digits: DataBundle,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _write_images(tmp_path / "images", digits)
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    code = predict.main([str(model_path), str(tmp_path / "images" / "broken.png"),
                         str(tmp_path / "images" / "gray0.png")])
    captured = capsys.readouterr()
    # Rule: the unreadable file is named on stderr, the others are still classified, exit code 2.
    assert code == 2
    assert "broken.png" in captured.err and captured.err.count("\n") == 1
    assert list(_lines(captured.out)) == ["gray0.png"]


@pytest.mark.parametrize(("writer", "size"), [
    (lambda p: bomb_png(p, 20_000), "20000x20000 pixels (400 megapixels)"),
    (lambda p: huge_jpeg(p, 50_000, 30_000), "50000x30000 pixels (1500 megapixels)"),
], ids=["png-bomb", "jpeg-header"])
def test_predict_image_too_big_is_named_and_the_rest_classified(
        model_path: Path, tmp_path: Path, digits: DataBundle, capsys: pytest.CaptureFixture[str],
        writer, size: str) -> None:
    written = _write_images(tmp_path / "images", digits)
    writer(tmp_path / "images" / "big.png")
    code = predict.main([str(model_path), str(tmp_path / "images")])
    captured = capsys.readouterr()
    # Rule: an image over the pixel limit is one stderr line naming it and its size (no
    # traceback, no decode); every other file is still classified, and the exit code is 2.
    assert code == 2 and captured.err.count("\n") == 1
    assert "big.png" in captured.err and size in captured.err and "Traceback" not in captured.err
    assert sorted(_lines(captured.out)) == sorted([*written, "rgb0.JPG", "rgb1.JPG", "rgb2.JPG"])


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize("spoil, needle", [
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(3000)), "not a cnn-search checkpoint"),
    (lambda p: torch.save({"weights": torch.zeros(3)}, p), "no 'cnn-search-checkpoint/1' marker"),
    (lambda p: p.write_text("hello"), "not a readable checkpoint"),
    (_truncated, "not a readable checkpoint"),
    (lambda p: p.unlink(), "does not exist"),
])
def test_predict_corrupt_or_foreign_checkpoint_is_one_line(model_path: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           spoil, needle: str) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    spoil(model_path)
    code = predict.main([str(model_path), str(tmp_path / "a.png")])
    err = capsys.readouterr().err
    # Rule: a checkpoint that is not ours or not whole is refused in one line, exit 2.
    assert code == 2 and err.count("\n") == 1 and needle in err


def _color_image(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".webp", ".gif", ".png", ".jpeg"])
def test_predict_reads_what_a_training_tree_reads(tmp_path: Path, suffix: str) -> None:
    # A model trained on a .webp or .gif tree could not be used by search.predict: training read
    # with torchvision, prediction with PIL and PNG/JPEG only. Both now read through one reader.
    for label in ("a", "b"):
        folder = tmp_path / "tree" / "train" / label
        folder.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(_color_image(i + 10 * (label == "b"), 40)).save(folder / f"{i}{suffix}")
    tree = load_tree(tmp_path / "tree", tmp_path / "cache", image_size=24)
    files = sorted((tmp_path / "tree" / "train").rglob(f"*{suffix}"))
    read = torch.stack([read_image(path, (3, 24, 24)) for path in files])
    # Rule: predict's reader gives exactly the tensors training decoded and resized.
    assert torch.equal(read, tree.x)


def test_predict_skips_hidden_files_as_training_does(model_path: Path, tmp_path: Path,
                                                     digits: DataBundle,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    written = _write_images(tmp_path / "images", digits)
    (tmp_path / "images" / "._gray0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / "images" / ".hidden").mkdir()
    Image.fromarray(digits.val.x[0, 0].numpy(), mode="L").save(tmp_path / "images" / ".hidden" / "x.png")
    Image.fromarray(digits.val.x[1, 0].numpy(), mode="L").save(tmp_path / "images" / "more.webp")
    code = predict.main([str(model_path), str(tmp_path / "images")])
    lines = _lines(capsys.readouterr().out)
    # Rule: a folder yields the files a training tree would use: hidden ones are skipped, WebP read.
    assert code == 0
    assert sorted(lines) == sorted([*written, "rgb0.JPG", "rgb1.JPG", "rgb2.JPG", "more.webp"])
