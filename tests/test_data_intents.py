"""Tests for ecmm.data.intents: labels, templates, template-disjoint splits, FAQ, Bitext loader."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from ecmm.data import intents
from ecmm.data.intents import (
    COLUMNS,
    INTENTS,
    ORDER_NUMBER_PATTERN,
    fill_template,
    load_faq,
    load_intents,
    load_out_of_scope,
    load_templates,
    read_bitext_parquet,
)

BITEXT_INTENTS = (  # the list, in its order
    "cancel_order change_order change_shipping_address check_cancellation_fee check_invoice "
    "check_payment_methods check_refund_policy complaint contact_customer_service "
    "contact_human_agent create_account delete_account delivery_options delivery_period "
    "edit_account get_invoice get_refund newsletter_subscription payment_issue place_order "
    "recover_password registration_problems review set_up_shipping_address switch_account "
    "track_order track_refund"
).split()


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_intents(profile="offline", seed=0)


def test_intents_are_exactly_the_27_bitext_labels():
    assert len(INTENTS) == 27
    assert list(INTENTS) == BITEXT_INTENTS


def test_at_least_30_distinct_templates_per_intent():
    templates = load_templates()
    assert list(templates) == list(INTENTS)
    everything = [normalise(t) for texts in templates.values() for t in texts]
    assert len(everything) == len(set(everything)), "a template is repeated (maybe across intents)"
    for intent, texts in templates.items():
        assert len(texts) >= 30, intent


def test_columns_splits_and_size(frame):
    assert list(frame.columns) == list(COLUMNS)
    assert set(frame["split"]) == {"train", "validation", "test", "out_of_scope"}
    in_scope = frame[frame["split"] != "out_of_scope"]
    assert set(in_scope["intent"]) == set(INTENTS)
    assert 2000 <= len(in_scope) <= 6000  # "a few thousand rows"


def test_split_is_by_template(frame):
    in_scope = frame[frame["split"] != "out_of_scope"]
    splits_per_template = in_scope.groupby("template_id")["split"].nunique()
    assert (splits_per_template == 1).all()
    texts = {split: set(rows["text"].map(normalise)) for split, rows in in_scope.groupby("split")}
    assert not texts["train"] & texts["test"]
    assert not texts["train"] & texts["validation"]
    assert not texts["validation"] & texts["test"]


def test_split_proportions_are_about_60_20_20(frame):
    templates = frame[frame["split"] != "out_of_scope"].drop_duplicates("template_id")
    shares = templates["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.6, abs=0.05)
    assert shares["validation"] == pytest.approx(0.2, abs=0.05)
    assert shares["test"] == pytest.approx(0.2, abs=0.05)


def test_every_split_is_non_empty_for_every_intent(frame):
    counts = frame[frame["split"] != "out_of_scope"].groupby(["intent", "split"]).size()
    counts = counts.unstack(fill_value=0)
    assert set(counts.index) == set(INTENTS)
    assert (counts[["train", "validation", "test"]] > 0).all().all()
    assert (counts["train"] > counts["test"]).all()


def test_deterministic_for_a_seed(frame):
    pd.testing.assert_frame_equal(frame, load_intents(profile="offline", seed=0))


def test_different_seeds_split_templates_differently(frame):
    other = load_intents(profile="offline", seed=1)
    first = frame.drop_duplicates("template_id").set_index("template_id")["split"]
    second = other.drop_duplicates("template_id").set_index("template_id")["split"]
    assert (first != second.reindex(first.index)).any()


def test_slots_are_all_filled(frame):
    assert not frame["text"].str.contains(r"[{}]").any()
    with_order = frame[frame["template_id"].isin(
        [f"{i}/{k:02d}" for i, ts in load_templates().items() for k, t in enumerate(ts)
         if "{order_number}" in t]
    )]
    assert len(with_order) > 100
    assert with_order["text"].map(lambda text: bool(ORDER_NUMBER_PATTERN.search(text))).all()


def test_fill_template_is_deterministic_and_rejects_unknown_slots():
    template = "Send the {colour} {product} from order {order_number} on {date} to {email}"
    first = fill_template(template, np.random.default_rng(3))
    assert first == fill_template(template, np.random.default_rng(3))
    assert "{" not in first and ORDER_NUMBER_PATTERN.search(first)
    assert fill_template("plain text", np.random.default_rng(0), vary=False) == "plain text"
    with pytest.raises(ValueError, match="Unknown slot"):
        fill_template("my {shoe_size}", np.random.default_rng(0))


def test_out_of_scope_is_large_and_disjoint_from_in_scope(frame):
    assert len(load_out_of_scope()) >= 150
    out = frame[frame["split"] == "out_of_scope"]
    assert len(out) >= 150
    assert set(out["intent"]) == {"out_of_scope"}
    in_scope = set(frame.loc[frame["split"] != "out_of_scope", "text"].map(normalise))
    assert not set(out["text"].map(normalise)) & in_scope
    templates = {normalise(t) for ts in load_templates().values() for t in ts}
    assert not set(out["text"].map(normalise)) & templates


def test_faq_covers_every_intent_with_short_help_page_answers():
    faq = load_faq()
    assert list(faq.columns) == ["faq_id", "intent", "title", "answer"]
    assert len(faq) >= 27
    assert faq["faq_id"].is_unique
    assert set(faq["intent"]) == set(INTENTS)
    for answer in faq["answer"]:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", answer.strip()) if s]
        assert 2 <= len(sentences) <= 5, answer
        assert set(re.findall(r"\{(\w+)\}", answer)) <= {"order_number", "product", "colour"}


def write_bitext_fixture(path, extra_rows=()):
    """A tiny parquet file with the hub's exact columns and Bitext-style placeholders."""
    rows = [
        ("B", "question about cancelling order {{Order Number}}", "ORDER", "cancel_order", "Sure."),
        ("BL", "i want to cancel my order", "ORDER", "cancel_order", "Sure."),
        ("BQ", "I want to cancel my order!", "ORDER", "cancel_order", "Sure."),
        ("B", "help me cancel purchase {{Order Number}}", "ORDER", "cancel_order", "Sure."),
        ("BZ", "how to cancell my order", "ORDER", "cancel_order", "Sure."),
        ("B", "where is my refund of {{Currency Symbol}}{{Refund Amount}}", "REFUND",
         "track_refund", "Let me check."),
        ("B", "I'd like to talk to a human agent", "CONTACT", "contact_human_agent", "Ok."),
        ("B", "book me a flight to Rome", "TRAVEL", "book_flight", "No."),
        ("B", "what's my balance", "BANK", "check_balance", "No."),
        *extra_rows,
    ]
    columns = ["flags", "instruction", "category", "intent", "response"]
    pd.DataFrame(rows, columns=columns).to_parquet(path)
    return path


def test_read_bitext_parquet_maps_hub_columns_and_drops_unknown_intents(tmp_path):
    path = write_bitext_fixture(tmp_path / "bitext.parquet")
    with pytest.warns(UserWarning, match="book_flight.*check_balance|check_balance.*book_flight"):
        mapped = read_bitext_parquet(path, seed=0)
    assert list(mapped.columns) == list(COLUMNS)
    assert len(mapped) == 7
    assert set(mapped["intent"]) == {"cancel_order", "track_refund", "contact_human_agent"}
    assert set(mapped["split"]) <= {"train", "validation", "test"}
    assert not mapped["text"].str.contains(r"[{}]").any()
    first = mapped["text"].iloc[0]
    assert first.startswith("question about cancelling order ") and ORDER_NUMBER_PATTERN.search(first)
    assert re.search(r"refund of [$€£]\d+", mapped["text"].iloc[5])
    # the same instruction up to case and punctuation is one template, hence one split
    same = mapped[mapped["text"].str.lower().str.startswith("i want to cancel my order")]
    assert same["template_id"].nunique() == 1 and same["split"].nunique() == 1
    cancel = mapped[mapped["intent"] == "cancel_order"]
    assert set(cancel["split"]) == {"train", "validation", "test"}  # 4 templates: every split
    with pytest.warns(UserWarning):
        pd.testing.assert_frame_equal(mapped, read_bitext_parquet(path, seed=0))


def test_read_bitext_parquet_gives_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_bitext_parquet(tmp_path / "missing.parquet")
    not_parquet = tmp_path / "notes.parquet"
    not_parquet.write_text("this is not parquet")
    with pytest.raises(ValueError, match="not a readable parquet"):
        read_bitext_parquet(not_parquet)
    wrong_columns = tmp_path / "wrong.parquet"
    pd.DataFrame({"text": ["hi"], "label": ["cancel_order"]}).to_parquet(wrong_columns)
    with pytest.raises(ValueError, match="lacks the Bitext columns"):
        read_bitext_parquet(wrong_columns)
    only_unknown = tmp_path / "unknown.parquet"
    pd.DataFrame({"flags": ["B"], "instruction": ["hi"], "category": ["X"], "intent": ["greet"],
                  "response": ["hello"]}).to_parquet(only_unknown)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no rows"):
        read_bitext_parquet(only_unknown)


def test_hub_profile_downloads_bitext_and_adds_out_of_scope(tmp_path, monkeypatch):
    import huggingface_hub

    path = write_bitext_fixture(tmp_path / "0000.parquet")
    calls = []

    def fake_download(**kwargs):
        calls.append(kwargs)
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.warns(UserWarning):
        hub = load_intents(profile="hub", seed=0)
    assert calls and calls[0]["repo_id"] == intents.BITEXT_REPO_ID
    assert calls[0]["repo_type"] == "dataset" and calls[0]["filename"].endswith(".parquet")
    assert list(hub.columns) == list(COLUMNS)
    assert (hub["split"] == "out_of_scope").sum() >= 150
    assert (hub["split"] != "out_of_scope").sum() == 7
    with pytest.warns(UserWarning):
        local = load_intents(profile="offline", hub_path=path)
    pd.testing.assert_frame_equal(hub, local)


def test_hub_download_failure_is_a_clear_error(monkeypatch):
    import huggingface_hub

    def no_network(**kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(RuntimeError, match="profile='offline'"):
        load_intents(profile="hub")


def test_offline_profile_never_touches_the_network(monkeypatch):
    import huggingface_hub

    def forbidden(**kwargs):
        raise AssertionError("offline profile must not download")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", forbidden)
    monkeypatch.setenv("ECMM_PROFILE", "offline")
    assert len(load_intents()) > 2000
