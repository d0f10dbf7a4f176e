"""Hyperparameter sweeps on an Optuna study: search space, trials as child runs, pruning, analysis."""
