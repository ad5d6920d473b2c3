"""Plot functions: data in, ``ax=None`` (a new figure when None), the axes out.

Plotting never computes metrics and never changes global matplotlib settings.
"""

from ecmm.plotting.data import split_matrix
from ecmm.plotting.images import image_grid
from ecmm.plotting.interpret import (
    plot_forgetting_curves,
    plot_heatmap_overlay,
    plot_label_efficiency_panels,
    plot_regret_curves,
    plot_word_attributions,
)
from ecmm.plotting.recsys import plot_item_row, plot_long_tail, plot_user_timeline
from ecmm.plotting.retrieval import (
    plot_label_efficiency_bars,
    plot_loss_curve,
    plot_search_results,
    plot_similarity_matrix,
    plot_wise_ft_curve,
)
from ecmm.plotting.service import plot_confidence_histograms, plot_reliability_diagram, plot_ticket
from ecmm.plotting.training import (
    plot_confusion_matrix,
    plot_decision_regions,
    plot_image_grid,
    plot_label_efficiency,
    plot_temperature,
    plot_training_curves,
)

__all__ = [
    "image_grid", "plot_confidence_histograms", "plot_confusion_matrix", "plot_decision_regions",
    "plot_forgetting_curves", "plot_heatmap_overlay", "plot_image_grid", "plot_item_row",
    "plot_label_efficiency", "plot_label_efficiency_bars", "plot_label_efficiency_panels",
    "plot_long_tail", "plot_loss_curve", "plot_regret_curves", "plot_reliability_diagram",
    "plot_search_results", "plot_similarity_matrix", "plot_temperature", "plot_ticket",
    "plot_training_curves", "plot_user_timeline", "plot_wise_ft_curve", "plot_word_attributions",
    "split_matrix",
]
