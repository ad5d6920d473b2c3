"""Recommendation: a user-behaviour simulator, a time split, five recommenders, per-segment metrics.

- :mod:`ecmm.recsys.simulator`: documented simulated shop log (tastes, sessions, long tail,
  co-purchases, repeat purchases, new products, new users).
- :mod:`ecmm.recsys.interactions`: interaction tables (simulated or real), the time split,
  cold-start items and new users.
- :mod:`ecmm.recsys.embeddings`: item content embeddings (shop CLIP image + text, or MiniLM text).
- :mod:`ecmm.recsys.models`: popularity, item-item co-occurrence, BPR, content-based, repeat purchase.
- :mod:`ecmm.recsys.two_tower`: the hybrid two-tower model trained with the CLIP loss.
- :mod:`ecmm.recsys.evaluation`: Recall@k, nDCG@k, MAP@k, coverage, novelty per segment.
- :mod:`ecmm.recsys.pipeline`: the shared data + models setup of notebook 06, CLI and benchmark.
- :mod:`ecmm.recsys.bandits`: online recommendation with a contextual bandit (LinUCB) on transferred
  features vs item IDs (notebook 10).
"""

from ecmm.recsys.embeddings import item_content_embeddings
from ecmm.recsys.evaluation import SEGMENTS, evaluate_recommenders, metrics_by_segment
from ecmm.recsys.interactions import Interactions, RecsysSplit, time_split
from ecmm.recsys.models import (
    BPRRecommender,
    ContentRecommender,
    CooccurrenceRecommender,
    PopularityRecommender,
    Recommender,
    RepeatPurchaseRecommender,
)
from ecmm.recsys.pipeline import MODEL_NAMES, RecsysData, build_models, build_recsys_data, fit_models
from ecmm.recsys.simulator import SimulatorConfig, simulate_interactions
from ecmm.recsys.two_tower import HybridTwoTowerRecommender, TwoTowerConfig

__all__ = [
    "BPRRecommender", "ContentRecommender", "CooccurrenceRecommender", "HybridTwoTowerRecommender",
    "Interactions", "MODEL_NAMES", "PopularityRecommender", "Recommender", "RecsysData", "RecsysSplit",
    "RepeatPurchaseRecommender", "SEGMENTS", "SimulatorConfig", "TwoTowerConfig", "build_models",
    "build_recsys_data", "evaluate_recommenders", "fit_models", "item_content_embeddings",
    "metrics_by_segment", "simulate_interactions", "time_split",
]
