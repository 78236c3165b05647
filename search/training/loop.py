"""The training loop: batches drawn by index from in-memory uint8 tensors."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from model_space import TrialConfig
from search import interrupts
from search.data.registry import DataBundle, Split

# Crop padding as a fraction of the image side: 4 px for 32x32 (the CIFAR convention), 8 for 64.
# Whether to augment at all is the data's call (search.data.registry.augment_default) or the spec's.
AUGMENT_PAD_FRACTION = 1 / 8
EVAL_BATCH = 2048
# One-cycle schedule: from peak/25 up to the peak over the first 30% of steps, then a cosine
# down to 0 (torch's OneCycleLR defaults, without its momentum cycling).
ONECYCLE_WARMUP = 0.3
ONECYCLE_START = 1 / 25


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class EpochResult:
    epoch: int  # 0-based
    train_loss: float
    val_accuracy: float
    seconds: float


@dataclass(frozen=True)
class TrainState:
    """Everything the loop needs to continue after its last finished epoch, bit for bit on the
    CPU: weights, optimizer, the batch-order and augmentation generator, the global RNG (dropout),
    the step of the schedule, and the epochs so far."""

    model: dict[str, torch.Tensor]
    optimizer: dict
    generator: torch.Tensor
    torch_rng: torch.Tensor
    step: int
    epochs: list[EpochResult]


# Called after each finished (and not pruned) epoch with the state to keep.
Checkpoint = Callable[[TrainState], None]


@dataclass(frozen=True)
class Normalizer:
    """Turns uint8 batches into normalised float batches on the model's device."""

    mean: torch.Tensor  # (1, C, 1, 1)
    scale: torch.Tensor  # 1 / (255 * std), (1, C, 1, 1)

    @classmethod
    def from_stats(cls, mean: tuple[float, ...], std: tuple[float, ...],
                   device: torch.device) -> Normalizer:
        m = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255.0
        s = 1.0 / (torch.tensor(std, device=device).view(1, -1, 1, 1) * 255.0)
        return cls(mean=m, scale=s)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) * self.scale


def augment_batch(x: torch.Tensor, generator: torch.Generator, cutout: float = 0.0) -> torch.Tensor:
    """Random crop after zero padding, and horizontal flip, per example, on a whole float batch;
    then, if ``cutout`` > 0, a square of that fraction of the side zeroed at a random place.

    Two gathers with per-example row and column indices (flipped columns for flipped
    examples): about 1 ms for 128 3x32x32 images on one CPU thread, no Python loop.
    """
    x = _crop_flip(x, generator)
    return _cutout(x, generator, cutout) if cutout > 0 else x


def _crop_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, c, h, w = x.shape
    pad = max(1, round(min(h, w) * AUGMENT_PAD_FRACTION))
    padded = nn.functional.pad(x, (pad,) * 4)
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator).to(x.device)
    rows = dy + torch.arange(h, device=x.device)  # (n, h)
    cols = dx + torch.arange(w, device=x.device)  # (n, w)
    flip = (torch.rand(n, 1, generator=generator) < 0.5).to(x.device)
    cols = torch.where(flip, cols.flip(1), cols)
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * pad))
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def _cutout(x: torch.Tensor, generator: torch.Generator, fraction: float) -> torch.Tensor:
    """Zero (the mean, after normalising) a square per example, centred anywhere in the image,
    so it may be cut by the border (DeVries & Taylor, 2017)."""
    n, _, h, w = x.shape
    side = max(1, round(min(h, w) * fraction))
    cy = torch.randint(0, h, (n, 1), generator=generator).to(x.device)
    cx = torch.randint(0, w, (n, 1), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device) - cy + side // 2  # (n, h)
    cols = torch.arange(w, device=x.device) - cx + side // 2  # (n, w)
    inside = ((rows >= 0) & (rows < side)).view(n, 1, h, 1) & ((cols >= 0) & (cols < side)).view(n, 1, 1, w)
    return x.masked_fill(inside, 0.0)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores; bf16 keeps fp32's range, so no loss scaling).

    On the CPU nothing changes: trials there stay bit-reproducible.
    """
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, normalize: Normalizer) -> torch.Tensor:
    """Class indices for uint8 images, evaluated in large batches."""
    model.eval()
    device = normalize.mean.device
    with autocast(device):
        chunks = [model(normalize(x[i:i + EVAL_BATCH].to(device))).argmax(1)
                  for i in range(0, len(x), EVAL_BATCH)]
    return torch.cat(chunks).cpu()


def accuracy(model: nn.Module, split: Split, normalize: Normalizer) -> float:
    return (predict(model, split.x, normalize) == split.y).float().mean().item()


def _cosine(base_lr: float, step: int, total: int) -> float:
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * step / total))


def _onecycle(base_lr: float, step: int, total: int) -> float:
    warm = max(1, round(total * ONECYCLE_WARMUP))
    if step < warm:
        return base_lr * (ONECYCLE_START + (1.0 - ONECYCLE_START) * step / warm)
    return _cosine(base_lr, step - warm, max(1, total - warm))


_SCHEDULES = {"cosine": _cosine, "onecycle": _onecycle}


@dataclass
class _Loop:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrialConfig
    train: Split  # already on the device
    normalize: Normalizer
    generator: torch.Generator
    total_steps: int
    step: int = 0
    epochs_done: int = 0

    def _set_lr(self) -> None:
        schedule = _SCHEDULES.get(self.config.schedule)
        if schedule is None:  # constant
            return
        lr = schedule(self.config.lr, self.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def epoch(self) -> float:
        """One pass over the training data; returns the mean loss."""
        self.model.train()
        n = len(self.train)
        order = torch.randperm(n, generator=self.generator).to(self.train.x.device)
        loss_sum = torch.zeros((), device=self.train.x.device)
        for start in range(0, n, self.config.batch_size):
            index = order[start:start + self.config.batch_size]
            x = self.normalize(self.train.x[index])
            if self.config.augment:
                x = augment_batch(x, self.generator, self.config.cutout)
            self._set_lr()
            with autocast(x.device):
                loss = nn.functional.cross_entropy(self.model(x), self.train.y[index],
                                                   label_smoothing=self.config.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * len(index)
            self.step += 1
            interrupts.check()  # a Ctrl-C the garbage collector swallowed stops the trial here
        # One sync per epoch: a NaN anywhere in the epoch makes the sum NaN.
        mean_loss = loss_sum.item() / n
        if not math.isfinite(mean_loss):
            raise DivergedError(f"training loss became {mean_loss} in epoch {self.epochs_done + 1}")
        self.epochs_done += 1
        return mean_loss

    def state(self, results: list[EpochResult]) -> TrainState:
        """The live state (not a copy: the checkpoint writer copies what it keeps)."""
        return TrainState(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                          generator=self.generator.get_state(), torch_rng=torch.get_rng_state(),
                          step=self.step, epochs=list(results))

    def restore(self, state: TrainState) -> None:
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.generator.set_state(state.generator)
        torch.set_rng_state(state.torch_rng)
        self.step = state.step
        self.epochs_done = len(state.epochs)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrialConfig,
    data: DataBundle,
    epochs: int,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[EpochResult], None] | None = None,
    validate: bool = True,
    *,
    resume: TrainState | None = None,
    checkpoint: Checkpoint | None = None,
) -> list[EpochResult]:
    """Train for ``epochs``; after each, measure val accuracy and call ``on_epoch``.

    ``on_epoch`` may raise (optuna.TrialPruned) to stop early. Raises DivergedError on a
    NaN or infinite loss. ``resume`` continues from a saved state after its last epoch;
    ``checkpoint`` is handed the state after every epoch that ``on_epoch`` let pass.
    """
    generator = torch.Generator().manual_seed(seed)
    train = Split(data.train.x.to(device), data.train.y.to(device))
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    normalize = Normalizer.from_stats(data.mean, data.std, device)
    loop = _Loop(model, optimizer, config, train, normalize, generator,
                 total_steps=max(1, epochs * steps_per_epoch))
    results: list[EpochResult] = []
    if resume is not None:
        loop.restore(resume)
        results = list(resume.epochs)
    for epoch in range(len(results), epochs):
        started = time.perf_counter()
        train_loss = loop.epoch()
        val_accuracy = accuracy(model, data.val, normalize) if validate else math.nan
        result = EpochResult(epoch, train_loss, val_accuracy, time.perf_counter() - started)
        results.append(result)
        # Reported and checkpointed as one step: a SIGTERM between the two would leave an epoch
        # in the study that the checkpoint lacks, and the retry would train it again.
        with interrupts.held():
            if on_epoch is not None:
                on_epoch(result)
            if checkpoint is not None and epoch + 1 < epochs:
                checkpoint(loop.state(results))
    return results
