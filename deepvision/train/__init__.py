"""Training: train states, pure train / eval steps, and the experiment loop."""
