"""Small pure metric functions: classification, retrieval and ranking.

Metrics never import models: they take labels, scores or ranked ids.
"""

from ecmm.metrics.classification import accuracy, confusion_matrix, macro_f1
from ecmm.metrics.ranking import (
    catalog_coverage,
    mean_average_precision_at_k,
    novelty,
    set_recall_at_k,
    top_k_items,
)
from ecmm.metrics.retrieval import mean_reciprocal_rank, ndcg_at_k, recall_at_k, retrieval_report

__all__ = [
    "accuracy", "catalog_coverage", "confusion_matrix", "macro_f1", "mean_average_precision_at_k",
    "mean_reciprocal_rank", "ndcg_at_k", "novelty", "recall_at_k", "retrieval_report",
    "set_recall_at_k", "top_k_items",
]
