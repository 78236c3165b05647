"""Would cheaper first rungs help on CIFAR-10? A first rung on a quarter of the images, against
the first rung on all of them, as a predictor of where a trial ends.

Successive halving and Hyperband decide at the first rung (one epoch) which trials go on.
Judging that rung on a quarter of the training images would cost a quarter of the epoch; it
helps only if it ranks trials about as well as the full epoch does. This takes the complete
trials of finished CIFAR-10 searches (benchmarks/cifar10.py: a 10,000-image subset, 4 epochs)
and, for each, trains its configuration again with the trial's seed on a stratified quarter of
the same subset (the same validation images), stopping after the first of its 4 epochs (the
schedule spans 4 epochs of the quarter, so it is as far through its schedule as the trial was
at its first rung). It reports, over all trials, the Spearman rank correlation with the final
val accuracy of (a) the trial's own first-epoch val accuracy on 10,000 images and (b) the
first epoch on 2,500, and the epochs each costs.

    python benchmarks/data_rungs.py --data DIR --cache DIR STUDY_DB [STUDY_DB ...]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import time
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState
from scipy.stats import spearmanr

from model_space import build_model, build_optimizer, sample_config
from search.data.registry import load_bundle
from search.study.studies import spec_of
from search.training.loop import EpochResult, fit
from search.training.objective import seed_everything, trial_seed

QUARTER = 4


class _FirstEpoch(Exception):
    pass


def first_epoch_on(data, config, epochs: int, seed: int) -> tuple[float, float]:
    """(val accuracy after the first epoch, its seconds) of ``config`` on ``data``."""
    seed_everything(seed)
    model = build_model(config, data.input_shape, data.n_classes)
    seen: list[EpochResult] = []

    def stop(result: EpochResult) -> None:
        seen.append(result)
        raise _FirstEpoch

    with contextlib.suppress(_FirstEpoch):
        fit(model, build_optimizer(config, model.parameters()), config, data, epochs, seed,
            torch.device("cpu"), stop)
    return seen[0].val_accuracy, seen[0].seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="+", type=Path, help="study.db of benchmarks/cifar10.py")
    parser.add_argument("--data", required=True, help="the CIFAR-10 ImageFolder tree")
    parser.add_argument("--cache", required=True, help="its decode cache folder")
    parser.add_argument("--out", type=Path, default=Path("benchmarks-out/data-rungs.json"))
    ns = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for db in ns.studies:
        url = f"sqlite:///{db.resolve()}"
        name = optuna.get_all_study_names(url)[0]
        study = optuna.load_study(study_name=name, storage=url)
        spec = spec_of(study)
        options = dataclasses.replace(spec.data, dataset=ns.data, data_dir=ns.cache)
        quarter = load_bundle(dataclasses.replace(
            options, train_subset=spec.data.train_subset // QUARTER))
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            config = sample_config(optuna.trial.FixedTrial(t.params), spec.space)
            started = time.perf_counter()
            val, seconds = first_epoch_on(quarter, config, spec.epochs,
                                          trial_seed(spec.seed, t.number))
            rows.append({"study": name, "trial": t.number, "final": t.value,
                         "first_full": t.intermediate_values[1], "first_quarter": val,
                         "quarter_seconds": round(seconds, 1),
                         "full_seconds": t.user_attrs.get("seconds_per_epoch"),
                         "wall": round(time.perf_counter() - started, 1)})
            print(json.dumps(rows[-1]), flush=True)
    final = [r["final"] for r in rows]
    full = spearmanr([r["first_full"] for r in rows], final).statistic
    quarter = spearmanr([r["first_quarter"] for r in rows], final).statistic
    summary = {"trials": len(rows), "spearman_first_epoch_full": full,
               "spearman_first_epoch_quarter": quarter,
               "seconds_full": sum(r["full_seconds"] or 0 for r in rows),
               "seconds_quarter": sum(r["quarter_seconds"] for r in rows)}
    print(json.dumps(summary, indent=1))
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
