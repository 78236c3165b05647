"""``model.onnx``: the exported model for runtimes other than PyTorch, checked under onnxruntime.

Like ``model.pt2`` (search.results.export) it takes raw uint8 images (N, C, H, W), named
``images``, with normalisation inside, and returns ``logits``; the batch dimension is dynamic.
Written by torch.onnx's exporter (torch.export, then onnxscript; opset as torch.onnx chooses,
recorded in metrics.json), then run under onnxruntime's CPU provider on every test image and
compared with the PyTorch model. Needs the deployment extra: ``pip install ".[deploy]"``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn

from search.data.format import InputFormat
from search.hints import first_line
from search.results.export import Deployed

NAME = "model.onnx"
EXTRA = "pip install \".[deploy]\" (onnx, onnxruntime, onnxscript)"
# Largest absolute difference between onnxruntime's logits and PyTorch's that passes: both
# compute in float32, in different orders. Measured here: 1e-7 to 5e-6 on digits and
# CIFAR-sized models, so 1e-4 leaves room for larger models without hiding a wrong graph.
TOLERANCE = 1e-4
CHECK_BATCH = 1000


def missing() -> str | None:
    """What to install for ONNX export, or None when it is installed."""
    names = ("onnx", "onnxruntime", "onnxscript")
    return None if all(importlib.util.find_spec(n) for n in names) else EXTRA


def export_onnx(path: Path, model: nn.Module, input_format: InputFormat) -> None:
    deployed = Deployed(model, input_format.mean, input_format.std).cpu().eval()
    example = torch.zeros((2, *input_format.input_shape), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    program = torch.onnx.export(deployed, (example,), dynamo=True, verbose=False,
                                input_names=["images"], output_names=["logits"],
                                dynamic_shapes=({0: batch},))
    assert program is not None
    program.save(str(path))


def check_onnx(path: Path, model: nn.Module, input_format: InputFormat,
               images: torch.Tensor) -> dict[str, Any]:
    """Run ``path`` on ``images`` (uint8 N, C, H, W) and compare it with the PyTorch model."""
    import onnx
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    deployed = Deployed(model, input_format.mean, input_format.std).cpu().eval()
    worst, same = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(images), CHECK_BATCH):
            x = images[start:start + CHECK_BATCH].cpu()
            theirs = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
            ours = deployed(x)
            worst = max(worst, (theirs - ours).abs().max().item())
            same += int((theirs.argmax(1) == ours.argmax(1)).sum())
    opset = next(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx"))
    return {"file": NAME, "opset": opset, "onnxruntime_version": onnxruntime.__version__,
            "images": len(images), "same_predictions": same / max(len(images), 1),
            "max_abs_logit_diff": worst, "tolerance": TOLERANCE,
            "ok": same == len(images) and worst <= TOLERANCE}


def write_onnx(path: Path, model: nn.Module, input_format: InputFormat,
               images: torch.Tensor) -> dict[str, Any]:
    """Export and check ``model.onnx``; what metrics.json says of it (or why it is absent)."""
    need = missing()
    if need is not None:
        return {"skipped": f"no model.onnx: {need}"}
    try:
        export_onnx(path, model, input_format)
        return check_onnx(path, model, input_format, images)
    except Exception as error:  # noqa: BLE001 - torch.export and onnxscript raise many types
        # model.pt and model.pt2 are the report's products and took minutes of retraining; an
        # exporter that cannot translate a model (or an onnxscript it does not work with) costs
        # only the ONNX file, and metrics.json says why.
        path.unlink(missing_ok=True)
        return {"failed": f"no model.onnx: {type(error).__name__}: {first_line(error)[:200]}"}


def summary_line(check: dict[str, Any]) -> str:
    """One line for the terminal on what ``write_onnx`` returned."""
    if "ok" not in check:  # skipped or failed: the reason, which names the file
        return check.get("skipped") or check["failed"]
    verdict = "agrees with" if check["ok"] else "DIFFERS FROM"
    return (f"model.onnx under onnxruntime {verdict} the PyTorch model: {check['same_predictions']:.2%} "
            f"of {check['images']} test predictions equal, largest logit difference "
            f"{check['max_abs_logit_diff']:.1e} (tolerance {check['tolerance']:.0e})")
