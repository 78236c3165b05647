"""The stored schema in code: every key this project writes into a study or a trial.

Studies outlive the code that wrote them (a resumed study, a report run a month later, the
dashboard), so the keys are written and read through these names only.
"""

from __future__ import annotations

# Study user attrs.
SPEC_ATTR = "spec"  # the study spec (JSON of StudySpec.to_flat()), written once at creation
DATA_PRINT_ATTR = "data_fingerprint"  # an ImageFolder study's {"sha256", "images"} of its tree
# A random id, written the first time the study is tracked with MLflow: its runs carry it as a
# tag, so every process on every machine finds the same parent run, and a new study of the same
# name gets a parent run of its own (search.tracking.mlflow_tracker).
TRACKING_ID_ATTR = "tracking_id"
# Study system attrs.
BEST_MODEL_ATTR = "cnn_search:best_model"  # {"trial", "value", "artifact_id"} of the saved best
ARTIFACT_ATTR_PREFIX = "artifacts:"  # Optuna's own key for an artifact's metadata
# The name of the study's one objective.
OBJECTIVE_NAME = "val_accuracy"

# Trial user attrs.
BASELINE_ATTR = "baseline"  # True on the textbook-recipe trial a study starts from
# On a trial a warm start enqueued: where its configuration came from, "study#trial number".
WARM_START_ATTR = "warm_start"
WORKER_ATTR = "worker"  # who ran the trial: "host:pid:worker index"
FAIL_REASON = "fail_reason"  # why a trial failed, one line
N_PARAMS = "n_params"  # trainable parameters of the trial's model
MACS = "macs"  # multiply-accumulates of one image's forward pass (search.training.costs)
LATENCY_MS = "latency_ms"  # median forward pass, measured as LATENCY_SETUP says
LATENCY_SETUP = "latency_setup"  # where latency was measured, e.g. "cpu, batch 1, 1 thread"
# True on a start-up trial whose model shape was drawn among those within the limits.
FEASIBLE_START_ATTR = "feasible_start"
OVER_LIMIT = "over_limit"  # why a trial was never trained, e.g. "n_params 25,010 > max_params 20,000"
# A multi-objective trial's val accuracy after each epoch (Trial.report serves one objective).
VAL_CURVE = "val_accuracies"
DEVICE = "device"  # where the trial trained, e.g. "cpu" or "cuda:0"
EPOCHS_RUN = "epochs_run"  # epochs trained (pruned and stopped trials train fewer)
SECONDS_PER_EPOCH = "seconds_per_epoch"
TRAIN_LOSS = "train_loss"  # of the last epoch
TRAIN_LOSSES = "train_losses"  # every epoch's, epoch 1 first (a retry's include its first attempt's)
STOPPED_EARLY = "stopped_early"  # ended by --patience, as complete
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # epochs a retry restored from its checkpoint

# The FAIL_REASON of a trial that Ctrl-C or SIGTERM stopped: the user's doing, not the trial's.
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"
