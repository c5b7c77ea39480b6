"""Experiment configs: one `get_config(arg)` per file; the argument `smoke` shrinks a run to seconds."""
