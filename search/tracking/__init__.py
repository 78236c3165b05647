"""Experiment trackers: every trial a run finishes, logged to MLflow or TensorBoard (``--track``)."""
