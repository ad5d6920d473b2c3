"""FAQ retrieval and its Recall@k, with a word-overlap encoder (hand-checkable similarities)."""

import pandas as pd
import pytest
import torch

from ecmm.service.faq import FaqRetriever, evaluate_faq_retrieval

WORDS = ("cancel", "order", "refund", "money", "password", "forgot", "track", "parcel")


class WordEncoder:
    """Embeds a text as the L2-normalised counts of a few keywords."""

    def encode(self, texts, batch_size=64):
        counts = torch.tensor([[text.lower().count(word) for word in WORDS] for text in texts], dtype=torch.float)
        return torch.nn.functional.normalize(counts + 1e-6, dim=-1)


FAQ = pd.DataFrame({
    "faq_id": ["f_cancel", "f_refund", "f_refund_2", "f_password"],
    "intent": ["cancel_order", "get_refund", "get_refund", "recover_password"],
    "title": ["Cancel an order", "Refund", "Money back", "Forgot password"],
    "answer": ["cancel cancel", "refund money", "money", "password password"],
})


def test_retrieve_ranks_the_matching_entry_first():
    retriever = FaqRetriever(WordEncoder(), FAQ)
    top = retriever.retrieve(["I forgot my password", "cancel it"], k=2)
    assert top[0]["faq_id"].iloc[0] == "f_password" and top[1]["faq_id"].iloc[0] == "f_cancel"
    assert len(top[0]) == 2 and top[0]["score"].is_monotonic_decreasing
    assert retriever.scores(["refund"]).shape == (1, 4)


def test_recall_at_k_counts_any_entry_of_the_intent_and_skips_unknown_intents():
    retriever = FaqRetriever(WordEncoder(), FAQ)
    messages = ["money back please", "track my parcel", "cancel order", "hello"]
    intents = ["get_refund", "recover_password", "cancel_order", "out_of_scope"]
    scores = evaluate_faq_retrieval(retriever, messages, intents, ks=(1, 3, 4))
    # "track my parcel" shares no keyword with the password entry, which comes last (rank 4)
    assert scores["R@1"] == pytest.approx(2 / 3)
    assert scores["R@3"] == pytest.approx(2 / 3)
    assert scores["R@4"] == pytest.approx(1.0)


def test_bad_faq_or_messages_raise():
    with pytest.raises(ValueError, match="lacks columns"):
        FaqRetriever(WordEncoder(), FAQ.drop(columns="answer"))
    with pytest.raises(ValueError, match="at least one"):
        FaqRetriever(WordEncoder(), FAQ).scores([])
    with pytest.raises(ValueError, match="no FAQ entry|None of these"):
        evaluate_faq_retrieval(FaqRetriever(WordEncoder(), FAQ), ["hi"], ["out_of_scope"])
