"""Sampling cost of one trial: Optuna's grouped multivariate TPE against ours (search/tpe.py).

Both samplers draw for the same study history (a trivial objective over our space, random
search with successive halving, so it holds complete and pruned trials), alternating, six
draws each at 100, 1,000 and 3,000 trials; the median of the last five is reported. Both run
with the constant liar off, as `python -m search.run` runs TPE for one worker (Optuna 5's
default turns it on; ours keeps its faster paths for finished trials only).

    python benchmarks/tpe_cost.py
"""

from __future__ import annotations

import statistics
import time
import warnings

import optuna
from overhead import objective  # benchmarks/ is on sys.path as a script

from search.strategy.samplers import make_pruner
from search.strategy.tpe import GroupedTPESampler


def draw_seconds(study: optuna.Study, sampler: optuna.samplers.BaseSampler) -> float:
    trial = study.ask()
    frozen = study._storage.get_trial(trial._trial_id)
    started = time.perf_counter()
    sampler.sample_relative(study, frozen, sampler.infer_relative_search_space(study, frozen))
    seconds = time.perf_counter() - started
    study.tell(trial, state=optuna.trial.TrialState.FAIL)  # failed trials are not history
    return seconds


def stock_tpe() -> optuna.samplers.TPESampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=0, multivariate=True, group=True,
                                          n_startup_trials=10, constant_liar=False)


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", pruner=make_pruner("sha", 8),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    print("| history | Optuna's grouped TPE, ms | ours, ms | ours / Optuna's |")
    print("| --- | --- | --- | --- |")
    for size in (100, 1000, 3000):
        study.optimize(objective, n_trials=size - len(study.trials))
        samplers = {"stock": stock_tpe(),
                    "ours": GroupedTPESampler(seed=0, n_startup_trials=10, constant_liar=False)}
        times: dict[str, list[float]] = {name: [] for name in samplers}
        for _ in range(6):
            for name, sampler in samplers.items():
                times[name].append(draw_seconds(study, sampler))
        # The first draw of each builds its groups (and ours its kept rows) from the whole
        # history: left out.
        stock, ours = (1000 * statistics.median(times[name][1:]) for name in ("stock", "ours"))
        print(f"| {size} | {stock:.1f} | {ours:.1f} | {ours / stock:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
