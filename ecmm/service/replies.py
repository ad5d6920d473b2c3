"""Replies: find slots in a message, fill them into the FAQ answer, hand off when unsure.

The offline kit does not *generate* free text. A reply is the FAQ answer of the predicted intent
with the slots of the message filled in (order number, product, colour). Free-form generation
with a large language model belongs to the hub profile and is outside the offline scope.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["Slots", "Reply", "extract_slots", "compose_reply", "SupportAssistant", "HANDOFF_INTENT"]

HANDOFF_INTENT = "contact_human_agent"  # the intent whose answer a hand-off uses
ORDER_NUMBER = re.compile(r"\bEC-?\d{6}\b", re.IGNORECASE)  # order numbers look like EC-123456


@dataclass(frozen=True)
class Slots:
    """Facts found in a customer message (None where absent)."""

    order_number: str | None = None  # normalised to "EC-123456"
    product: str | None = None  # a catalog product type, e.g. "running shoe"
    colour: str | None = None  # a catalog colour, e.g. "red"


@dataclass(frozen=True)
class Reply:
    """What the assistant answers to one message."""

    intent: str  # predicted intent (the hand-off intent when rejected)
    confidence: float  # max class probability of the classifier
    in_scope: bool  # False when the confidence fell below the threshold
    answer: str  # the reply text
    product: str | None  # product named in the message or identified from its photo
    slots: Slots  # everything found in the message

    def to_dict(self) -> dict:
        """JSON-ready dict: ``intent, confidence, in_scope, answer, product, slots``."""
        return asdict(self)


def _default_vocabulary() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from ecmm.data.catalog import COLOURS, PRODUCT_TYPES

    return tuple(product.name.replace("\u2019", "'") for product in PRODUCT_TYPES), tuple(COLOURS)


def _find_phrase(text: str, phrases: Sequence[str]) -> str | None:
    """The earliest (then longest) phrase that occurs in ``text`` as whole words."""
    best = None
    for phrase in phrases:
        match = re.search(r"(?<![\w'])" + re.escape(phrase.lower()) + r"(?![\w'])", text)
        if match and (best is None or (match.start(), -len(phrase)) < (best[0], -len(best[1]))):
            best = (match.start(), phrase)
    return best[1] if best else None


def extract_slots(
    message: str, products: Sequence[str] | None = None, colours: Sequence[str] | None = None
) -> Slots:
    """Find an order number, a product type and a colour in a message.

    Args:
        message: the customer's text.
        products: known product names; None uses the catalog's product types.
        colours: known colour names; None uses the catalog's colours.

    Returns:
        The :class:`Slots` found (None where absent).
    """
    default_products, default_colours = _default_vocabulary()
    text = " ".join(str(message).replace("\u2019", "'").lower().split())
    order = ORDER_NUMBER.search(text)
    order_number = None
    if order:
        order_number = "EC-" + re.sub(r"\D", "", order.group(0))
    return Slots(
        order_number=order_number,
        product=_find_phrase(text, default_products if products is None else products),
        colour=_find_phrase(text, default_colours if colours is None else colours),
    )


def compose_reply(
    intent: str,
    confidence: float,
    answer_template: str,
    slots: Slots,
    threshold: float,
    handoff_answer: str,
    product: str | None = None,
) -> Reply:
    """Fill the slots into the answer, or hand off to a human agent when confidence is low.

    Args:
        intent: predicted intent.
        confidence: its probability.
        answer_template: the FAQ answer of that intent, possibly with ``{order_number}``.
        slots: what :func:`extract_slots` found.
        threshold: confidences strictly below it are handed off.
        handoff_answer: the answer used for a hand-off.
        product: product to mention (e.g. identified from a photo); None uses ``slots.product``.

    Returns:
        The :class:`Reply`.
    """
    product = product or slots.product
    if confidence < threshold:
        text = "I am not sure I understood, so I am passing you to a colleague. " + handoff_answer
        return Reply(HANDOFF_INTENT, float(confidence), False, text, product, slots)
    order_text = f"order {slots.order_number}" if slots.order_number else "your order"
    answer = answer_template.replace("order {order_number}", order_text)
    answer = answer.replace("{order_number}", slots.order_number or "your order")
    if product:
        item = f"{slots.colour} {product}" if slots.colour else product
        answer = f"About your {item}: {answer}"
    return Reply(intent, float(confidence), True, answer, product, slots)


class SupportAssistant:
    """Classifier + FAQ + slots + threshold: answers a message like a first-line agent.

    Args:
        classifier: any intent classifier with ``predict_proba(texts)`` and ``label_names``.
        faq: FAQ table with ``intent, title, answer`` (one or more rows per intent).
        threshold: rejection threshold on the classifier's confidence.
        retriever: optional :class:`ecmm.service.faq.FaqRetriever` to pick among several answers
            of one intent; None takes the first.
        product_finder: optional callable mapping an image to a product name (photo tickets).
    """

    def __init__(
        self,
        classifier,
        faq: pd.DataFrame,
        threshold: float,
        retriever=None,
        product_finder: Callable[[object], str] | None = None,
    ) -> None:
        missing = set(classifier.label_names) - set(faq["intent"])
        if missing:
            raise ValueError(f"The FAQ has no answer for intents {sorted(missing)[:5]}: add FAQ rows for them.")
        if retriever is not None and list(retriever.faq["faq_id"]) != list(faq["faq_id"]):
            raise ValueError("The retriever was built on another FAQ table: build it with the same `faq`.")
        self.classifier = classifier
        self.faq = faq.reset_index(drop=True)
        self.threshold = float(threshold)
        self.retriever = retriever
        self.product_finder = product_finder
        self.handoff_answer = self.faq.loc[self.faq["intent"] == HANDOFF_INTENT, "answer"].iloc[0]

    def _answer_for(self, message: str, intent: str) -> str:
        rows = self.faq.index[self.faq["intent"] == intent]
        if len(rows) == 1 or self.retriever is None:
            return self.faq.loc[rows[0], "answer"]
        scores = self.retriever.scores([message])[0]  # (F,) aligned with the retriever's FAQ
        best = rows[int(np.argmax(scores[rows]))]
        return self.faq.loc[best, "answer"]

    def reply(self, message: str, image=None) -> Reply:
        """Answer one message, optionally with a photo of the product.

        Args:
            message: the customer's text (not empty).
            image: optional product photo for ``product_finder``.

        Returns:
            The :class:`Reply`.
        """
        if not str(message).strip():
            raise ValueError("The message is empty: write what the customer asked.")
        probabilities = self.classifier.predict_proba([message])[0]  # (K,)
        best = int(np.argmax(probabilities))
        intent = self.classifier.label_names[best]
        product = None
        if image is not None:
            if self.product_finder is None:
                raise ValueError("A photo was given but no product_finder: build the assistant with one.")
            product = self.product_finder(image)
        slots = extract_slots(message)
        return compose_reply(intent, float(probabilities[best]), self._answer_for(message, intent), slots,
                             self.threshold, self.handoff_answer, product=product)
