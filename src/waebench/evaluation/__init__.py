"""Evaluation of trained models: FID (torch-fidelity) in the Inception and classifier
feature spaces, test-set metrics, figures, and the orchestration used by
`waebench-train` (after training) and `waebench-eval`."""

from waebench.evaluation.evaluate import evaluate, evaluate_into_metrics
from waebench.evaluation.fid import InceptionWeightsError

__all__ = ["InceptionWeightsError", "evaluate", "evaluate_into_metrics"]
