"""Training: the loop, the objective (sample, build, fit, report, prune), devices, and the
--jobs N worker processes."""
