"""Evaluation experiments on saved models or their own problems: shift, second order."""
