"""Tests for ecmm.interpret: Grad-CAM, occlusion, leave-one-out, nearest examples, masks."""

import numpy as np
import pytest
import torch
from torch import nn

from ecmm.interpret import (
    QuerySimilarity,
    foreground_mask,
    grad_cam,
    heat_inside_fraction,
    leave_one_out_attributions,
    nearest_examples,
    occlusion_map,
)


class _TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, 2, 1))
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def test_grad_cam_shape_range_and_non_negativity():
    torch.manual_seed(0)
    model = _TinyCNN()
    images = torch.randn(2, 3, 16, 16)
    heat = grad_cam(model, model.features[-1], images, targets=[0, 2], device="cpu")
    assert heat.shape == (2, 16, 16)
    assert (heat >= 0).all() and (heat <= 1).all()
    assert model.training  # the train/eval mode is restored


def test_grad_cam_equals_the_activation_of_the_only_channel_the_score_reads():
    # score = total of channel 0; channel weights are then (1, 0, 0), so the map is channel 0 itself.
    class ChannelZero(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Identity()

        def forward(self, x):
            return self.layer(x)[:, 0].sum(dim=(1, 2))

    images = torch.zeros(1, 3, 8, 8)
    images[0, 0, :4, :4] = 1.0  # channel 0 lives top-left
    images[0, 1, 4:, 4:] = 5.0  # channel 1 is bright but irrelevant
    model = ChannelZero()
    heat = grad_cam(model, model.layer, images, device="cpu")[0]
    assert torch.equal(heat, images[0, 0])


def test_grad_cam_rejects_a_layer_outside_the_model():
    model = _TinyCNN()
    with pytest.raises(ValueError, match="not used"):
        grad_cam(model, nn.Conv2d(3, 3, 1), torch.randn(1, 3, 8, 8), device="cpu")


def test_query_similarity_is_cosine():
    encoder = nn.Flatten()
    images = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 2.0]]]])  # (2, 1, 1, 2) -> embeddings (2, 2)
    scores = QuerySimilarity(encoder, torch.tensor([1.0, 0.0]))(images)
    assert torch.allclose(scores, torch.tensor([1.0, 0.0]))


def test_occlusion_map_marks_the_pixels_the_score_reads():
    images = torch.zeros(1, 3, 4, 4)
    images[0, :, 0:2, 0:2] = 1.0

    def score(x):  # reads only the top-left 2x2 patch
        return x[:, :, 0:2, 0:2].sum(dim=(1, 2, 3))

    drop = occlusion_map(score, images, patch_size=2)
    assert drop.shape == (1, 4, 4)
    assert torch.allclose(drop[0, 0:2, 0:2], torch.full((2, 2), 12.0))  # 3 channels * 4 pixels
    assert torch.count_nonzero(drop[0, 2:, :]) == 0 and torch.count_nonzero(drop[0, :, 2:]) == 0


def test_leave_one_out_on_a_keyword_classifier():
    def predict_proba(texts):  # class 1 iff the word "cancel" is present
        return np.array([[0.1, 0.9] if "cancel" in t.split() else [0.8, 0.2] for t in texts])

    frame = leave_one_out_attributions(predict_proba, "please cancel my order")
    assert list(frame["word"]) == ["please", "cancel", "my", "order"]
    assert frame.attrs["target"] == 1
    np.testing.assert_allclose(frame["attribution"], [0.0, 0.7, 0.0, 0.0])


def test_leave_one_out_rejects_empty_text():
    with pytest.raises(ValueError, match="empty"):
        leave_one_out_attributions(lambda texts: np.ones((len(texts), 2)) / 2, "   ")


def test_nearest_examples_by_cosine():
    references = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    values, indices = nearest_examples(np.array([2.0, 0.1]), references, k=2)
    assert indices.tolist() == [[0, 2]]
    assert values[0, 0] == pytest.approx(2.0 / np.hypot(2.0, 0.1))
    with pytest.raises(ValueError, match="k must be"):
        nearest_examples(references, references, k=4)


def test_foreground_mask_and_heat_inside_fraction():
    photos = np.full((1, 4, 4, 3), 200, dtype=np.uint8)
    photos[0, 1:3, 1:3] = (255, 0, 0)
    mask = foreground_mask(photos)
    assert mask.sum() == 4 and mask[0, 1:3, 1:3].all()
    heat = np.zeros((1, 4, 4))
    heat[0, 1, 1], heat[0, 0, 0] = 3.0, 1.0
    assert heat_inside_fraction(heat, mask)[0] == pytest.approx(0.75)


def test_interpret_plots_return_axes():
    import pandas as pd

    from ecmm.plotting.interpret import (
        plot_forgetting_curves,
        plot_heatmap_overlay,
        plot_label_efficiency_panels,
        plot_regret_curves,
        plot_word_attributions,
    )

    assert plot_heatmap_overlay(np.zeros((8, 8, 3), dtype=np.uint8), np.ones((4, 4))) is not None
    words = pd.DataFrame({"word": ["a", "b"], "attribution": [0.5, -0.1]})
    assert plot_word_attributions(words).get_yticklabels()[0].get_text() == "a"
    ax = plot_regret_curves(pd.DataFrame({"round": [1, 2], "random": [0.5, 1.0], "linucb": [0.2, 0.3]}))
    assert len(ax.lines) == 2
    results = pd.DataFrame({"strategy": ["naive"] * 4, "after_wave": [0, 1, 0, 1], "wave": [1, 1, 2, 2],
                            "recall": [0.1, 0.8, 0.1, 0.2]})
    assert len(plot_forgetting_curves(results)) == 1
    efficiency = pd.DataFrame({"task": ["t"] * 4, "method": ["a", "a", "b", "b"], "labels": [1, 5, 1, 5],
                               "score": [0.1, 0.5, 0.2, 0.3]})
    assert len(plot_label_efficiency_panels(efficiency)[0].lines) == 2


def test_tokens_to_map_drops_the_class_token_and_restores_the_grid():
    from ecmm.interpret import tokens_to_map

    patches = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (B, 2 x 2 patches, D)
    tokens = torch.cat([torch.full((2, 1, 3), -1.0), patches], dim=1)  # a class token first: (2, 5, 3)
    grid = tokens_to_map(tokens, batch_size=2)
    assert grid.shape == (2, 3, 2, 2)
    assert torch.equal(grid[1, :, 0, 1], patches[1, 1])  # patch 1 sits at row 0, column 1
    assert torch.equal(tokens_to_map(tokens.transpose(0, 1), batch_size=2), grid)  # sequence-first layout


def test_grad_cam_reads_token_outputs_as_maps():
    # score = channel 0 of patch tokens; the class token's channel is ignored, so the map is that channel.
    class TokenModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Identity()

        def forward(self, x):  # (B, 3, 2, 2) -> tokens (B, 1 + 4, 3)
            tokens = torch.cat([x.mean(dim=(2, 3))[:, None], x.flatten(2).transpose(1, 2)], dim=1)
            return self.block(tokens)[:, 1:, 0].sum(dim=1)

    images = torch.zeros(1, 3, 2, 2)
    images[0, 0] = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    images[0, 1] = 9.0  # an irrelevant channel
    model = TokenModel()
    heat = grad_cam(model, model.block, images, device="cpu")[0]
    torch.testing.assert_close(heat, images[0, 0] / 3.0)
