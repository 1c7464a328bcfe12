"""Helpers of the benchmark scripts in ``tools/``: parallel resumable sweeps, the long-range
benchmark's lower bounds. Nothing in training, evaluation or deployment imports this room."""
