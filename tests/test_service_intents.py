"""Intent classifiers, few-shot sampling, calibration and rejection on tiny hand-made data."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ecmm.service.confidence import (
    choose_threshold,
    expected_calibration_error,
    rejection_metrics,
    reliability_table,
)
from ecmm.service.intents import (
    FineTuneConfig,
    FineTunedIntentClassifier,
    FrozenIntentClassifier,
    TfidfIntentClassifier,
    encode_intents,
    evaluate_intents,
    sample_few_shot,
)

LABELS = ("cancel_order", "track_order", "get_refund")
TEXTS = [
    "cancel my order", "please cancel the order", "i want to cancel", "cancel it now",
    "where is my order", "track my parcel", "where is the package", "track order status",
    "i want my money back", "refund please", "give me a refund", "money back for the order",
]
INTENT_OF = [LABELS[i // 4] for i in range(12)]


class FakeTokenizer:
    """Whitespace tokenizer over a fixed vocabulary (id 0 = padding, 1 = unknown)."""

    def __init__(self, words):
        self.vocabulary = {word: index + 2 for index, word in enumerate(sorted(words))}

    def __len__(self):
        return len(self.vocabulary) + 2

    def __call__(self, texts, padding=True, truncation=True, max_length=16, return_tensors="pt"):
        ids = [[self.vocabulary.get(w, 1) for w in text.lower().split()][:max_length] or [1] for text in texts]
        width = max(len(row) for row in ids)
        input_ids = torch.tensor([row + [0] * (width - len(row)) for row in ids])
        return {"input_ids": input_ids, "attention_mask": (input_ids > 0).long()}


class FakeEncoder(nn.Module):
    """Bag-of-words encoder with the TextEncoder interface: mean of token embeddings."""

    def __init__(self, words, embedding_dim=16):
        super().__init__()
        self.tokenizer = FakeTokenizer(words)
        self.embedding_dim = embedding_dim
        generator = torch.Generator().manual_seed(0)
        self.embedding = nn.Embedding(len(self.tokenizer), embedding_dim)
        self.projection = nn.Linear(embedding_dim, embedding_dim)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.randn(len(self.tokenizer), embedding_dim, generator=generator))

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()  # (B, T, 1)
        return self.projection((self.embedding(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1))

    @torch.no_grad()
    def encode(self, texts, batch_size=64):
        batch = self.tokenizer(list(texts))
        return nn.functional.normalize(self(batch["input_ids"], batch["attention_mask"]), dim=-1)


@pytest.fixture
def encoder():
    return FakeEncoder({word for text in TEXTS for word in text.split()})


def test_encode_intents_maps_names_and_rejects_unknown():
    assert encode_intents(["get_refund", "cancel_order"], LABELS).tolist() == [2, 0]
    with pytest.raises(ValueError, match="Unknown intents"):
        encode_intents(["out_of_scope"], LABELS)


def test_tfidf_learns_the_training_set_and_fills_unseen_classes():
    classifier = TfidfIntentClassifier(LABELS).fit(TEXTS, INTENT_OF)
    probabilities = classifier.predict_proba(TEXTS)
    assert probabilities.shape == (12, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert evaluate_intents(probabilities, INTENT_OF, LABELS)["accuracy"] == 1.0
    partial = TfidfIntentClassifier(LABELS).fit(TEXTS[:8], INTENT_OF[:8])  # no get_refund rows
    assert np.all(partial.predict_proba(["refund"])[:, 2] == 0.0)


def test_unfitted_and_empty_input_raise():
    with pytest.raises(ValueError, match="not trained"):
        TfidfIntentClassifier(LABELS).predict_proba(["hello"])
    with pytest.raises(ValueError, match="at least one"):
        TfidfIntentClassifier(LABELS).fit([], [])


def test_frozen_head_keeps_encoder_fixed_and_fits(encoder):
    before = [p.clone() for p in encoder.parameters()]
    classifier = FrozenIntentClassifier(encoder, LABELS, device="cpu").fit(TEXTS, INTENT_OF)
    assert all(torch.equal(a, b) for a, b in zip(before, encoder.parameters()))
    assert evaluate_intents(classifier.predict_proba(TEXTS), INTENT_OF, LABELS)["accuracy"] == 1.0


def test_fine_tuning_changes_a_copy_and_lowers_the_loss(encoder):
    before = [p.clone() for p in encoder.parameters()]
    config = FineTuneConfig(num_epochs=30, batch_size=4, encoder_learning_rate=1e-2, head_learning_rate=5e-2,
                            freeze_token_embeddings=True)
    classifier = FineTunedIntentClassifier(encoder, LABELS, config, device="cpu").fit(TEXTS, INTENT_OF, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, encoder.parameters()))  # caller's encoder untouched
    assert torch.equal(classifier.encoder.embedding.weight, encoder.embedding.weight)  # token table frozen
    assert not torch.equal(classifier.encoder.projection.weight, encoder.projection.weight)  # layers trained
    losses = classifier.history["loss"]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert evaluate_intents(classifier.predict_proba(TEXTS), INTENT_OF, LABELS)["accuracy"] == 1.0


def test_evaluate_intents_hand_computed():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    scores = evaluate_intents(probabilities, ["cancel_order", "track_order", "track_order", "get_refund"], LABELS)
    assert scores["accuracy"] == pytest.approx(0.75)
    # F1: cancel 2/3 (TP1 FP1), track 2/3 (TP1 FN1), refund 1 -> mean 7/9
    assert scores["macro_f1"] == pytest.approx(7 / 9)


def test_sample_few_shot_draws_per_intent_and_depends_on_seed():
    frame = pd.DataFrame({"text": TEXTS, "intent": INTENT_OF})
    first = sample_few_shot(frame, 2, seed=0)
    assert first["intent"].value_counts().to_dict() == {name: 2 for name in LABELS}
    draws = {tuple(sample_few_shot(frame, 2, seed=seed)["text"]) for seed in range(6)}
    assert len(draws) > 1
    assert tuple(sample_few_shot(frame, 2, seed=0)["text"]) == tuple(first["text"])
    with pytest.raises(ValueError, match="at most"):
        sample_few_shot(frame, 5)


def test_reliability_table_and_ece_hand_computed():
    confidences = [0.95, 0.95, 0.55, 0.55]
    correct = [True, True, True, False]
    table = reliability_table(confidences, correct, num_bins=10)
    assert table["count"].tolist() == [2, 2]
    assert table["lower"].tolist() == pytest.approx([0.5, 0.9])
    assert table["accuracy"].tolist() == [0.5, 1.0]
    # (|0.5 - 0.55| * 2 + |1.0 - 0.95| * 2) / 4 = 0.05
    assert expected_calibration_error(confidences, correct, num_bins=10) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="probabilities"):
        reliability_table([1.5], [True])


def test_rejection_metrics_and_threshold_choice():
    inside = [0.9, 0.8, 0.7, 0.3]
    outside = [0.2, 0.4, 0.95]
    scores = rejection_metrics(inside, outside, threshold=0.5)
    # rejected: 0.3 (in scope), 0.2, 0.4 (out) -> precision 2/3, recall 2/3, kept 3/4
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["in_scope_kept"] == pytest.approx(0.75)
    assert choose_threshold(inside, min_in_scope_kept=1.0) == pytest.approx(0.3)  # reject nothing in scope
    assert choose_threshold(inside, min_in_scope_kept=0.75) == pytest.approx(0.7)  # may drop one
    threshold = choose_threshold(inside, outside, min_in_scope_kept=0.75)
    assert rejection_metrics(inside, outside, threshold)["in_scope_kept"] >= 0.75
    assert threshold == pytest.approx(0.7)  # rejects 0.2, 0.4 and 0.3: best F1 within the budget
