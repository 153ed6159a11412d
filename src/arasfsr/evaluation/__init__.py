"""Evaluation: the paper's protocols, metrics, result tables and comparison pictures."""

from .metrics import face_metrics, rgb_to_y
from .runner import EvalConfig, run_eval

__all__ = ["EvalConfig", "face_metrics", "rgb_to_y", "run_eval"]
