"""SoftmaxHead and Classifier."""

import pytest
import torch

from ecmm.models.heads import Classifier, SoftmaxHead


def test_head_shapes_and_probabilities_sum_to_one():
    head = SoftmaxHead(num_features=5, num_classes=3)
    z = torch.randn(4, 5)
    assert head(z).shape == (4, 3)
    torch.testing.assert_close(head.probabilities(z).sum(-1), torch.ones(4))


def test_head_is_linear_softmax_by_hand():
    head = SoftmaxHead(2, 2)
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.linear.bias.zero_()
    p = head.probabilities(torch.tensor([[0.0, torch.log(torch.tensor(3.0))]]))
    torch.testing.assert_close(p, torch.tensor([[0.25, 0.75]]))


def test_temperature_divides_logits():
    torch.manual_seed(0)
    head = SoftmaxHead(3, 4, temperature=2.0)
    z = torch.randn(2, 3)
    torch.testing.assert_close(head(z), head.linear(z) / 2.0)


def test_classifier_composes_backbone_and_head():
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 6))
    model = Classifier(backbone, SoftmaxHead(6, 3))
    assert model(torch.randn(2, 3, 2, 2)).shape == (2, 3)
    assert model.num_parameters() == 12 * 6 + 6 + 6 * 3 + 3


def test_bad_arguments():
    with pytest.raises(ValueError):
        SoftmaxHead(0, 3)
    with pytest.raises(ValueError):
        SoftmaxHead(3, 3, temperature=0)
