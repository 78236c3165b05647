"""model.onnx: the exported model under onnxruntime gives the PyTorch model's answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from model_space import TrialConfig, build_model
from search.data.format import InputFormat
from search.results.export import Deployed
from search.results.onnx_export import TOLERANCE, check_onnx, export_onnx, summary_line, write_onnx

# Two convs per block with a residual and test-time flips: every layer kind the space builds.
CONFIG = TrialConfig(widths=(8, 16), optimizer="sgd", lr=0.1, weight_decay=0.0, dropout=0.1,
                     batch_size=8, convs=2, residual=True, augment=True, tta_flip=True)
FORMAT = InputFormat(input_shape=(3, 16, 16), classes=tuple("abcd"), mean=(0.5, 0.4, 0.3),
                     std=(0.2, 0.25, 0.3))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(CONFIG, FORMAT.input_shape, len(FORMAT.classes)).eval()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(path, model, FORMAT)
    return path, model


def test_onnx_takes_uint8_images_of_any_batch_and_matches_pytorch(exported) -> None:
    path, model = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (given,), (returned,) = session.get_inputs(), session.get_outputs()
    assert (given.name, given.type, returned.name) == ("images", "tensor(uint8)", "logits")
    deployed = Deployed(model, FORMAT.mean, FORMAT.std).eval()
    for batch in (1, 5):
        x = torch.randint(0, 256, (batch, *FORMAT.input_shape), dtype=torch.uint8)
        theirs = session.run(None, {"images": x.numpy()})[0]
        assert theirs.shape == (batch, 4)
        np.testing.assert_allclose(theirs, deployed(x).detach().numpy(), atol=TOLERANCE)
    with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument):
        session.run(None, {"images": np.zeros((1, *FORMAT.input_shape), np.float32)})


def test_check_onnx_reports_equal_predictions_within_tolerance(exported) -> None:
    path, model = exported
    images = torch.randint(0, 256, (2500, *FORMAT.input_shape), dtype=torch.uint8)
    check = check_onnx(path, model, FORMAT, images)
    assert check["ok"] and check["same_predictions"] == 1.0 and check["images"] == 2500
    assert check["max_abs_logit_diff"] <= TOLERANCE and check["opset"] >= 17
    # A different model's weights under the same file: the check says so.
    other = build_model(CONFIG, FORMAT.input_shape, len(FORMAT.classes)).eval()
    assert not check_onnx(path, other, FORMAT, images)["ok"]


class DataDependent(torch.nn.Module):
    """A branch on the values, which torch.export cannot trace: an export that fails."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :4] if x.sum() > 0 else -x.flatten(1)[:, :4]


def test_write_onnx_that_cannot_export_says_why_and_leaves_no_file(tmp_path: Path) -> None:
    images = torch.zeros((3, *FORMAT.input_shape), dtype=torch.uint8)
    check = write_onnx(tmp_path / "model.onnx", DataDependent(), FORMAT, images)
    # Rule: a failed export costs only model.onnx: no exception, no file, and the reason recorded.
    assert set(check) == {"failed"} and check["failed"].startswith("no model.onnx: ")
    assert list(tmp_path.iterdir()) == []
    assert summary_line(check) == check["failed"]


def test_summary_line_says_whether_the_file_agrees(exported) -> None:
    path, model = exported
    images = torch.randint(0, 256, (10, *FORMAT.input_shape), dtype=torch.uint8)
    check = check_onnx(path, model, FORMAT, images)
    # Rule: the terminal line gives the verdict and the numbers behind it.
    assert summary_line(check).startswith("model.onnx under onnxruntime agrees with the PyTorch model: "
                                          "100.00% of 10 test predictions equal")
    assert "DIFFERS FROM" in summary_line({**check, "ok": False})
