"""The objective: sample, build, fit, report, prune. Data is loaded once, outside it."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import optuna
import torch
from torch import nn

from model_space import (
    SearchSpace,
    TrialConfig,
    build_model,
    build_optimizer,
    count_parameters,
    sample_config,
)
from search.data.registry import DataBundle
from search.optuna_private import reported_steps
from search.schema import (
    DEVICE,
    EPOCHS_RUN,
    FAIL_REASON,
    LATENCY_MS,
    LATENCY_SETUP,
    MACS,
    N_PARAMS,
    OVER_LIMIT,
    RESUMED_FROM_EPOCH,
    SECONDS_PER_EPOCH,
    STOPPED_EARLY,
    TRAIN_LOSS,
    TRAIN_LOSSES,
    VAL_CURVE,
)
from search.strategy.pareto import ParetoHalving
from search.study.spec import ACCURACY
from search.training.checkpoints import CheckpointWriter, TrialCheckpoints, origin
from search.training.costs import Costs, LatencySetup, measure, over_limit
from search.training.loop import DivergedError, EpochResult, TrainState, fit

# Called with (trial, trained model, config, val accuracy) after a trial trains to the end.
TrainedHook = Callable[[optuna.Trial, nn.Module, TrialConfig, float], None]
# After each epoch: record its val accuracy; then whether to stop the trial there.
_Report = Callable[[EpochResult], None]
_Judge = Callable[[EpochResult], bool]


def trial_seed(study_seed: int, trial_number: int) -> int:
    return (study_seed * 1_000_003 + trial_number) % (2**31)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _Stalled(Exception):
    """Validation accuracy stopped improving: end the trial as complete."""


def stalled(epochs: list[EpochResult], patience: int) -> bool:
    """Whether the last ``patience`` epochs all failed to beat the best accuracy before them."""
    if patience < 1 or len(epochs) <= patience:
        return False
    best_before = max(e.val_accuracy for e in epochs[:-patience])
    return all(e.val_accuracy <= best_before for e in epochs[-patience:])


@dataclass(frozen=True)
class Objective:
    """Callable handed to ``study.optimize``; returns the last epoch's val accuracy."""

    data: DataBundle
    space: SearchSpace
    epochs: int
    seed: int
    device: torch.device
    # Stores the trained weights (search.results.artifacts.ModelSaver); None keeps nothing.
    on_trained: TrainedHook | None = None
    # Stop a trial (as COMPLETE, not pruned) once val accuracy has not improved for this many
    # epochs; 0 trains every trial to ``epochs`` unless the pruner stops it.
    patience: int = 0
    # Where each running trial keeps its last finished epoch; None keeps nothing.
    checkpoints: TrialCheckpoints | None = None
    # val_accuracy, then the costs a multi-objective study minimises (search.study.spec.COSTS).
    objectives: tuple[str, ...] = (ACCURACY,)
    # Cost -> the most a model may cost; a model over a limit is never trained.
    limits: dict[str, float] = field(default_factory=dict)
    latency: LatencySetup = LatencySetup()
    # A multi-objective study's pruner; None trains every trial to the end. Single-objective
    # studies prune through the study's own pruner (trial.should_prune).
    pareto: ParetoHalving | None = None

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        config = sample_config(trial, self.space)
        first = origin(trial)
        # A retry is the same trial: the same seed, so a resumed or restarted retry trains
        # exactly what the first attempt would have.
        seed = trial_seed(self.seed, first)
        seed_everything(seed)
        writer = self.checkpoints.writer(first) if self.checkpoints is not None else None
        try:
            value = self._train(trial, config, seed, first, writer)
        except KeyboardInterrupt:
            if writer is not None:
                with contextlib.suppress(RuntimeError):  # a write that never started
                    writer.flush()  # Ctrl-C or SIGTERM: every finished epoch stays for the retry
            raise
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        if writer is not None:
            writer.discard()  # complete, pruned or diverged: nothing will resume it
        return value

    def _resumed(self, trial: optuna.Trial, config: TrialConfig, first: int) -> TrainState | None:
        resume = self.checkpoints.load(first, config) if self.checkpoints is not None else None
        if resume is not None:
            trial.set_user_attr(RESUMED_FROM_EPOCH, len(resume.epochs))
        return resume

    def _train(self, trial: optuna.Trial, config: TrialConfig, seed: int, first: int,
               writer: CheckpointWriter | None) -> float | tuple[float, ...]:
        epochs_done: list[EpochResult] = []
        costs = None
        try:
            # Building is inside: a net too wide for the device fails here, at allocation.
            model = self._build(trial, config)
            costs = self._measure(trial, model)
            resume = self._resumed(trial, config, first)
            if resume is not None:
                epochs_done.extend(resume.epochs)  # their values came with the retry
            fit(model, build_optimizer(config, model.parameters()), config, self.data,
                self.epochs, seed, self.device, self._reporter(trial, epochs_done, costs),
                resume=resume,
                checkpoint=None if writer is None else lambda state: writer.save(state, config))
        except _Stalled:
            trial.set_user_attr(STOPPED_EARLY, True)
        except DivergedError as error:
            self._record(trial, epochs_done)
            trial.set_user_attr(FAIL_REASON, str(error))
            # A NaN value fails this trial with a one-line warning; the study goes on.
            return (math.nan,) * len(self.objectives) if self.multi else math.nan
        except (RuntimeError, MemoryError) as error:
            # Out of memory (CPU or CUDA, both RuntimeError or MemoryError) or a shape the
            # data cannot take: this trial fails with the reason kept, and the study goes on.
            self._record(trial, epochs_done)
            trial.set_user_attr(FAIL_REASON, f"{type(error).__name__}: {error}"[:500])
            raise
        self._record(trial, epochs_done)
        value = epochs_done[-1].val_accuracy
        if self.on_trained is not None:
            self.on_trained(trial, model, config, value)
        if not self.multi:
            return value
        assert costs is not None
        return (value, *(costs.value(name) for name in self.objectives[1:]))

    def _build(self, trial: optuna.Trial, config: TrialConfig) -> nn.Module:
        model = build_model(config, self.data.input_shape, self.data.n_classes).to(self.device)
        trial.set_user_attr(N_PARAMS, count_parameters(model))
        trial.set_user_attr(DEVICE, str(self.device))
        return model

    def _measure(self, trial: optuna.Trial, model: nn.Module) -> Costs:
        """The model's costs, as user attrs; a model over a limit ends the trial, untrained.

        It ends as pruned at step 0: the samplers rank such a trial below every trained one,
        and so learn where the limits lie (docs/deployment.md).
        """
        costs = measure(model, self.data.input_shape, self.latency)
        trial.set_user_attr(MACS, costs.macs)
        trial.set_user_attr(LATENCY_MS, costs.latency_ms)
        trial.set_user_attr(LATENCY_SETUP, self.latency.describe())
        reason = over_limit(costs, self.limits)
        if reason is not None:
            trial.set_user_attr(OVER_LIMIT, reason)
            trial.set_user_attr(EPOCHS_RUN, 0)
            raise optuna.TrialPruned(f"not trained: {reason}")
        return costs

    def _reporter(self, trial: optuna.Trial, epochs_done: list[EpochResult],
                  costs: Costs) -> Callable[[EpochResult], None]:
        """Reports each epoch's val accuracy and prunes; keeps the epochs for the user attrs."""
        report, should_prune = (self._pareto_judge(trial, epochs_done, costs) if self.multi
                                else self._optuna_judge(trial))

        def on_epoch(result: EpochResult) -> None:
            epochs_done.append(result)
            report(result)
            if should_prune(result):
                self._record(trial, epochs_done)
                raise optuna.TrialPruned(f"val_accuracy {result.val_accuracy:.4f} "
                                         f"at epoch {result.epoch + 1}")
            if stalled(epochs_done, self.patience):
                raise _Stalled

        return on_epoch

    @staticmethod
    def _optuna_judge(trial: optuna.Trial) -> tuple[_Report, _Judge]:
        """Trial.report and the study's pruner."""
        # A retry inherits its first attempt's values; restarted from epoch 0 (no usable
        # checkpoint) it trains the same epochs again, with the same seed: report only new ones.
        inherited = reported_steps(trial)

        def report(result: EpochResult) -> None:
            if result.epoch + 1 not in inherited:
                trial.report(result.val_accuracy, step=result.epoch + 1)

        return report, lambda _: trial.should_prune()

    def _pareto_judge(self, trial: optuna.Trial, epochs_done: list[EpochResult],
                      costs: Costs) -> tuple[_Report, _Judge]:
        """A multi-objective trial keeps its curve in a user attr (Trial.report serves one
        objective), and ParetoHalving judges it."""
        trial_costs = {name: costs.value(name) for name in self.objectives[1:]}

        def report(_: EpochResult) -> None:
            trial.set_user_attr(VAL_CURVE, [round(e.val_accuracy, 6) for e in epochs_done])

        def should_prune(result: EpochResult) -> bool:
            return self.pareto is not None and self.pareto.should_prune(
                trial.study, trial.number, result.epoch + 1, result.val_accuracy, trial_costs)

        return report, should_prune

    @staticmethod
    def _record(trial: optuna.Trial, epochs: list[EpochResult]) -> None:
        trial.set_user_attr(EPOCHS_RUN, len(epochs))
        if not epochs:
            return
        trial.set_user_attr(SECONDS_PER_EPOCH, round(sum(e.seconds for e in epochs)
                                                       / len(epochs), 4))
        trial.set_user_attr(TRAIN_LOSS, round(epochs[-1].train_loss, 6))
        # The curve, for the experiment trackers (search.tracking), which log a trial once it ends.
        trial.set_user_attr(TRAIN_LOSSES, [round(e.train_loss, 6) for e in epochs])
