"""Small pure metric functions: classification, retrieval and ranking.

Metrics never import models: they take labels, scores or ranked ids.
"""

from ecmm.metrics.classification import accuracy, confusion_matrix, macro_f1  # noqa: F401
from ecmm.metrics.retrieval import mean_reciprocal_rank, ndcg_at_k, recall_at_k, retrieval_report  # noqa: F401
from ecmm.metrics.ranking import catalog_coverage, mean_average_precision_at_k, novelty, set_recall_at_k, top_k_items  # noqa: F401

__all__: list[str] = []
