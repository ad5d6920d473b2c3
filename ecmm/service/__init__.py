"""Customer service with a pretrained language model: intents, FAQ answers, replies, photo tickets.

Import the submodule you need (``from ecmm.service import intents, faq``):

- ``intents``: TF-IDF baseline, frozen MiniLM + softmax head, fine-tuned MiniLM; few-shot sampling.
- ``confidence``: calibration (reliability table, ECE) and out-of-scope rejection thresholds.
- ``faq``: FAQ retrieval by embedding similarity, Recall@k.
- ``replies``: slot extraction, reply composer, hand-off, the ``SupportAssistant``.
- ``tickets``: photo + text tickets (CLIP image search for the product, the classifier for the intent).
- ``evaluation``: the experiments shared by notebook 07 and ``python -m ecmm.bench support``.
"""

__all__ = ["intents", "confidence", "faq", "replies", "tickets", "evaluation"]
