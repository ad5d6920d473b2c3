"""ecmm: transfer learning with large pretrained models for e-commerce, as runnable notebooks.

Import submodules explicitly: ``from ecmm import data, models``.
"""

__version__ = "0.1.0"

__all__ = [
    "__version__", "config", "device", "assets", "data", "models", "losses", "train", "pretraining",
    "finetune", "finetune_recipe", "optimisation", "index", "search", "metrics", "recsys", "service", "plotting", "export", "ann",
    "serving", "distributed", "interpret", "compute", "trends",
]
