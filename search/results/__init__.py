"""What a finished study yields: best_config.json, the retrain, checkpoints, the exported
program, the report (sections, plots, rendering), artifacts, and folders written whole."""
