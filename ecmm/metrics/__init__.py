"""Small pure metric functions: classification, retrieval and ranking.

Metrics never import models: they take labels, scores or ranked ids.
"""

__all__: list[str] = []
