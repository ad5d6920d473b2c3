"""Customer-service text data: 27 Bitext intents, template-split messages, FAQ, out-of-scope.

Offline profile: hand-written templates (``resources/intent_templates.json``, at least 30 per
intent) are split **by template** into train / validation / test (about 60/20/20 per intent,
from the seed), so no test sentence shares a template with a training sentence. Each template
is filled several times with slots (products and colours from the catalog, order numbers,
dates, payment methods, emails, amounts). A hand-written out-of-scope set (chit-chat, other
domains) forms the ``out_of_scope`` split, for rejection.

Hub profile: the Bitext customer-support dataset (CDLA-Sharing-1.0) from the Hugging Face hub,
mapped to the same schema by :func:`read_bitext_parquet`, plus the same out-of-scope set.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ecmm.config import get_settings

INTENTS: tuple[str, ...] = (
    "cancel_order", "change_order", "change_shipping_address", "check_cancellation_fee",
    "check_invoice", "check_payment_methods", "check_refund_policy", "complaint",
    "contact_customer_service", "contact_human_agent", "create_account", "delete_account",
    "delivery_options", "delivery_period", "edit_account", "get_invoice", "get_refund",
    "newsletter_subscription", "payment_issue", "place_order", "recover_password",
    "registration_problems", "review", "set_up_shipping_address", "switch_account",
    "track_order", "track_refund",
)
OUT_OF_SCOPE = "out_of_scope"  # intent and split name of the rejection set
SPLITS: tuple[str, ...] = ("train", "validation", "test", OUT_OF_SCOPE)
SENTENCES_PER_TEMPLATE = {"train": 6, "validation": 3, "test": 3}  # slot fillings per template
TRAIN_FRACTION, VALIDATION_FRACTION = 0.6, 0.2  # of each intent's templates; the rest is test
MIN_TEMPLATES_PER_INTENT = 30
ORDER_NUMBER_PATTERN = re.compile(r"\bEC-?\d{6}\b", re.IGNORECASE)  # how order numbers look
BITEXT_REPO_ID = "bitext/Bitext-customer-support-llm-chatbot-training-dataset"
BITEXT_FILENAME = "default/train/0000.parquet"  # the hub's parquet conversion of the CSV
BITEXT_REVISION = "refs/convert/parquet"
BITEXT_COLUMNS: tuple[str, ...] = ("flags", "instruction", "category", "intent", "response")
COLUMNS: tuple[str, ...] = ("text", "intent", "split", "template_id")
SLOT_NAMES: tuple[str, ...] = ("product", "colour", "order_number", "date", "payment_method",
                               "email", "amount")

_RESOURCES = Path(__file__).parent / "resources"
_SLOT = re.compile(r"\{(\w+)\}")
_PAYMENT_METHODS = ("PayPal", "Visa", "Mastercard", "credit card", "debit card", "Apple Pay",
                    "Google Pay", "Klarna", "bank transfer", "gift card", "Amex")
_OPENINGS = ("Hi, ", "Hello, ", "hey ", "Good morning, ", "Hi there! ", "Hello team, ")
_CLOSINGS = (" Thanks!", " Thank you.", " thx", " Many thanks.", " Cheers.", " Thanks in advance.")
_HAS_OPENING = re.compile(r"^(hi|hello|hey|good (morning|afternoon|evening)|dear)\b", re.IGNORECASE)
_HAS_CLOSING = re.compile(r"thank|thx|cheers", re.IGNORECASE)
_FIRST_NAMES = ("anna", "ben", "chloe", "david", "emma", "farid", "grace", "hugo", "ines", "jon",
                "li.wei", "maria", "noah", "olga", "priya", "sam")
_EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "web.de", "icloud.com", "proton.me")
_MONTHS = tuple(calendar.month_name)[1:]  # English names (the C locale)
_WEEKDAYS = tuple(calendar.day_name)
_BITEXT_SLOTS = {"order number": "order_number", "invoice number": "order_number",
                 "refund amount": "amount", "email": "email", "email address": "email"}
_BITEXT_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")  # Bitext writes {{Order Number}}


def _read_json(name: str):
    with open(_RESOURCES / name, encoding="utf-8") as handle:
        return json.load(handle)


@lru_cache(maxsize=1)
def load_templates() -> dict[str, tuple[str, ...]]:
    """Load and validate the hand-written templates: {intent: templates}, in INTENTS order."""
    raw = _read_json("intent_templates.json")
    if tuple(raw) != INTENTS:
        raise ValueError("intent_templates.json must list exactly the 27 INTENTS, in order.")
    for intent, templates in raw.items():
        if len(set(templates)) != len(templates) or len(templates) < MIN_TEMPLATES_PER_INTENT:
            raise ValueError(f"{intent}: need >= {MIN_TEMPLATES_PER_INTENT} distinct templates.")
        unknown = {slot for t in templates for slot in _SLOT.findall(t)} - set(SLOT_NAMES)
        if unknown:
            raise ValueError(f"{intent}: unknown slots {sorted(unknown)}; use {SLOT_NAMES}.")
    return {intent: tuple(templates) for intent, templates in raw.items()}


@lru_cache(maxsize=1)
def load_out_of_scope() -> tuple[str, ...]:
    """Return the hand-written out-of-scope messages (chit-chat and other domains)."""
    return tuple(_read_json("out_of_scope.json"))


def load_faq() -> pd.DataFrame:
    """Load the FAQ knowledge base, written like a shop's help pages.

    Returns:
        DataFrame with columns ``faq_id, intent, title, answer``; one or more rows per intent.
        Answers may contain ``{order_number}`` for a reply composer to fill.
    """
    return pd.DataFrame(_read_json("faq.json"), columns=["faq_id", "intent", "title", "answer"])


@lru_cache(maxsize=1)
def _products_and_colours() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from ecmm.data.catalog import COLOURS, PRODUCT_TYPES

    return tuple(product.name.replace("\u2019", "'") for product in PRODUCT_TYPES), COLOURS


def _slot_value(slot: str, rng: np.random.Generator) -> str:
    """One random value for a slot; order numbers match :data:`ORDER_NUMBER_PATTERN`."""
    products, colours = _products_and_colours()
    day, month = int(rng.integers(1, 29)), _MONTHS[int(rng.integers(0, 12))]
    makers = {
        "product": lambda: rng.choice(products),
        "colour": lambda: rng.choice(colours),
        "payment_method": lambda: rng.choice(_PAYMENT_METHODS),
        "order_number": lambda: f"{rng.choice(['EC-', 'EC-', 'EC', 'ec-'])}"
                                f"{rng.integers(100_000, 1_000_000)}",
        "date": lambda: rng.choice([_WEEKDAYS[day % 7], f"{day} {month}", f"{month} {day}",
                                    f"{day:02d}/{_MONTHS.index(month) + 1:02d}"]),
        "email": lambda: f"{rng.choice(_FIRST_NAMES)}{day if rng.random() < 0.5 else ''}"
                         f"@{rng.choice(_EMAIL_DOMAINS)}",
        "amount": lambda: f"{rng.choice(['$', '€', '£'])}{rng.integers(5, 400)}"
                          f"{'.99' if rng.random() < 0.5 else ''}",
    }
    if slot not in makers:
        raise ValueError(f"Unknown slot {{{slot}}}: use one of {SLOT_NAMES}.")
    return str(makers[slot]())


def fill_template(template: str, rng: np.random.Generator, vary: bool = True) -> str:
    """Fill every ``{slot}`` independently, then maybe add a greeting/thanks or lower-case it.

    Args:
        template: text with slots such as ``{product}``, ``{colour}``, ``{order_number}``.
        rng: numpy generator that makes the result deterministic.
        vary: randomly vary the register as customers do (opening, closing, lower case).

    Returns:
        The message, with no ``{`` left.
    """
    text = _SLOT.sub(lambda match: _slot_value(match.group(1), rng), template)
    if not vary:
        return text
    if rng.random() < 0.3 and not _HAS_OPENING.match(text):
        opening = str(rng.choice(_OPENINGS))
        keep_case = text.startswith(("I ", "I'")) or not opening.endswith(", ")
        text = opening + (text if keep_case else text[0].lower() + text[1:])
    if rng.random() < 0.25 and not _HAS_CLOSING.search(text):
        text = text + ("" if text[-1] in ".!?" else ".") + str(rng.choice(_CLOSINGS))
    return text.lower() if rng.random() < 0.15 else text


def _split_template_ids(template_ids: list[str], rng: np.random.Generator) -> dict[str, str]:
    """Map template ids to train/validation/test (about 60/20/20; all non-empty from 3 ids)."""
    order = [template_ids[i] for i in rng.permutation(len(template_ids))]
    count = len(order)
    if count < 3:
        return {template_id: "train" for template_id in order}
    num_validation = max(1, round(VALIDATION_FRACTION * count))
    num_train = min(max(1, round(TRAIN_FRACTION * count)), count - num_validation - 1)
    names = ["train"] * num_train + ["validation"] * num_validation
    names += ["test"] * (count - len(names))
    return dict(zip(order, names))


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _drop_leaks(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop duplicate sentences, and validation/test sentences already seen in an earlier split."""
    frame = frame.assign(_key=frame["text"].map(_normalise))
    frame = frame.drop_duplicates(["_key", "split"])
    seen: set[str] = set()
    keep = pd.Series(True, index=frame.index)
    for split in ("train", "validation", "test"):
        rows = frame["split"] == split
        keep &= ~(rows & frame["_key"].isin(seen))
        seen |= set(frame.loc[rows, "_key"])
    return frame[keep].drop(columns="_key")


def _out_of_scope_frame(in_scope_texts: pd.Series) -> pd.DataFrame:
    taken = set(in_scope_texts.map(_normalise))
    rows = [(text, OUT_OF_SCOPE, OUT_OF_SCOPE, f"{OUT_OF_SCOPE}/{index:03d}")
            for index, text in enumerate(load_out_of_scope()) if _normalise(text) not in taken]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _offline_intents(seed: int) -> pd.DataFrame:
    rows = []
    for intent_index, (intent, templates) in enumerate(load_templates().items()):
        rng = np.random.default_rng([seed, intent_index])
        template_ids = [f"{intent}/{index:02d}" for index in range(len(templates))]
        splits = _split_template_ids(template_ids, rng)
        for template_id, template in zip(template_ids, templates):
            split = splits[template_id]
            for _ in range(SENTENCES_PER_TEMPLATE[split]):
                rows.append((fill_template(template, rng), intent, split, template_id))
    return _drop_leaks(pd.DataFrame(rows, columns=list(COLUMNS)))


def read_bitext_parquet(path: str | Path, seed: int = 0) -> pd.DataFrame:
    """Map a Bitext customer-support parquet file to the :func:`load_intents` schema.

    ``instruction`` becomes ``text`` (its ``{{Order Number}}``-style placeholders are filled
    like the offline slots); rows whose ``intent`` is not one of the 27 :data:`INTENTS` are
    dropped with a ``UserWarning`` that names them. Bitext has no templates, so
    ``template_id`` groups identical instructions (after lower-casing and removing
    placeholders), and the split is by that id, per intent, 60/20/20 from the seed.

    Args:
        path: local parquet file with the hub's columns ``flags, instruction, category,
            intent, response``.
        seed: seed of the split and of the placeholder fillings.

    Returns:
        DataFrame with columns ``text, intent, split, template_id`` (no out-of-scope rows).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Bitext parquet file not found: {path}. Pass the path of a local "
                                "copy, or call load_intents(profile='hub') to download it.")
    try:
        raw = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several error types for non-parquet files
        raise ValueError(f"{path} is not a readable parquet file ({error}).") from error
    missing = [column for column in BITEXT_COLUMNS if column not in raw.columns]
    if missing:
        raise ValueError(f"{path} lacks the Bitext columns {missing}: expected the hub's "
                         f"columns {list(BITEXT_COLUMNS)}.")
    known = raw["intent"].isin(INTENTS)
    if not known.all():
        dropped = raw.loc[~known, "intent"].value_counts().to_dict()
        warnings.warn(f"Dropped rows whose intent is not one of the 27 INTENTS: {dropped}.",
                      UserWarning, stacklevel=2)
    raw = raw[known]
    if raw.empty:
        raise ValueError(f"{path} has no rows with one of the 27 Bitext intents.")
    rng = np.random.default_rng(seed)

    def fill(match: re.Match) -> str:  # known placeholders get slot values, others their words
        name = match.group(1).lower()
        if name in ("person name", "client first name"):
            return str(rng.choice(_FIRST_NAMES)).split(".")[0].title()
        slot = _BITEXT_SLOTS.get(name)
        return _slot_value(slot, rng) if slot else "" if name == "currency symbol" else name

    texts, template_ids = [], []
    for instruction, intent in zip(raw["instruction"].astype(str), raw["intent"]):
        key = re.sub(r"[^a-z0-9]+", " ", _BITEXT_PLACEHOLDER.sub(" ", instruction.lower())).strip()
        template_ids.append(f"{intent}/bitext-{hashlib.sha1(key.encode()).hexdigest()[:10]}")
        texts.append(" ".join(_BITEXT_PLACEHOLDER.sub(fill, instruction).split()))
    frame = pd.DataFrame({"text": texts, "intent": raw["intent"].to_numpy(),
                          "template_id": template_ids})
    splits: dict[str, str] = {}
    for intent_index, intent in enumerate(INTENTS):
        ids = sorted(set(frame.loc[frame["intent"] == intent, "template_id"]))
        splits.update(_split_template_ids(ids, np.random.default_rng([seed, intent_index])))
    frame["split"] = frame["template_id"].map(splits)
    return frame[list(COLUMNS)].reset_index(drop=True)


def load_intents(
    profile: str | None = None, seed: int = 0, hub_path: str | Path | None = None
) -> pd.DataFrame:
    """Load the customer-service messages with template-disjoint splits.

    Args:
        profile: "offline" (hand-written templates, no network) or "hub" (Bitext from the
            Hugging Face hub); None reads ``ECMM_PROFILE``.
        seed: seed of the template split and of the slot fillings (same seed, same frame).
        hub_path: a local copy of the Bitext parquet file; when given it is read instead of
            the offline templates and nothing is downloaded.

    Returns:
        DataFrame with columns ``text, intent, split, template_id``; ``split`` is one of
        train / validation / test / out_of_scope (intent ``out_of_scope`` for the latter).
    """
    if hub_path is not None:
        frame = read_bitext_parquet(hub_path, seed=seed)
    elif get_settings(profile).profile == "hub":
        try:
            from huggingface_hub import hf_hub_download

            downloaded = hf_hub_download(repo_id=BITEXT_REPO_ID, repo_type="dataset",
                                         filename=BITEXT_FILENAME, revision=BITEXT_REVISION)
        except Exception as error:  # no network, hub down, missing package
            raise RuntimeError(f"Could not download {BITEXT_REPO_ID} from the hub ({error}). Use "
                               "profile='offline' or pass hub_path= to a local copy.") from error
        frame = read_bitext_parquet(downloaded, seed=seed)
    else:
        frame = _offline_intents(seed)
    return pd.concat([frame, _out_of_scope_frame(frame["text"])], ignore_index=True)
