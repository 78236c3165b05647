"""A study and its storage: spec, storage URLs and engines, creation, the trial gate, orphans,
counts, progress, the dashboard note and the next commands to run.

No torch here: the study layer must load fast and run where no model is trained."""
