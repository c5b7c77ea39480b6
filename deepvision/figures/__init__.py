"""Figures the trainers draw into a run's work dir (below `train/` in the layers)."""
