"""Slot extraction, reply composition and hand-off, on hand-written messages."""

import numpy as np
import pandas as pd
import pytest

from ecmm.service.replies import HANDOFF_INTENT, Slots, SupportAssistant, compose_reply, extract_slots

FAQ = pd.DataFrame({
    "faq_id": ["a", "b", "c"],
    "intent": ["cancel_order", "track_order", HANDOFF_INTENT],
    "title": ["Cancel", "Track", "Human"],
    "answer": ["Open order {order_number} and press Cancel.", "Track it in your account.", "Type agent."],
})


def test_extract_slots_finds_order_product_and_colour():
    slots = extract_slots("Please cancel order ec123456, the Red running shoe is too small")
    assert slots == Slots(order_number="EC-123456", product="running shoe", colour="red")
    assert extract_slots("hello there") == Slots()


def test_extract_slots_prefers_the_longer_product_and_whole_words():
    slots = extract_slots("my musical keyboard arrived", products=["keyboard", "musical keyboard"], colours=["red"])
    assert slots.product == "musical keyboard"
    assert extract_slots("a bored kid", products=["red"], colours=["red"]).colour is None  # no sub-word hit
    assert extract_slots("the man's shoe, EC-654321").product == "man's shoe"  # catalog names, straight quote


def test_compose_reply_fills_slots_or_uses_a_neutral_phrase():
    template = FAQ.answer[0]
    filled = compose_reply("cancel_order", 0.9, template, Slots("EC-111111", "backpack", "blue"), 0.5, "agent")
    assert filled.in_scope and filled.intent == "cancel_order"
    assert "order EC-111111" in filled.answer and filled.answer.startswith("About your blue backpack:")
    assert "{" not in compose_reply("cancel_order", 0.9, template, Slots(), 0.5, "agent").answer
    assert "your order" in compose_reply("cancel_order", 0.9, template, Slots(), 0.5, "agent").answer


def test_compose_reply_hands_off_below_the_threshold():
    reply = compose_reply("cancel_order", 0.3, FAQ.answer[0], Slots(), 0.5, "Type agent.")
    assert not reply.in_scope and reply.intent == HANDOFF_INTENT and reply.answer.endswith("Type agent.")
    assert reply.confidence == pytest.approx(0.3)


class Fixed:
    """A classifier that always gives the same probabilities."""

    label_names = ("cancel_order", "track_order", HANDOFF_INTENT)

    def __init__(self, probabilities):
        self.probabilities = np.asarray([probabilities])

    def predict_proba(self, texts):
        return self.probabilities


def test_support_assistant_end_to_end_with_photo_and_errors():
    assistant = SupportAssistant(Fixed([0.8, 0.1, 0.1]), FAQ, 0.5, product_finder=lambda image: "teapot")
    reply = assistant.reply("cancel EC-222222 please", image=np.zeros((4, 4, 3), np.uint8))
    assert reply.product == "teapot" and "order EC-222222" in reply.answer
    assert set(reply.to_dict()) == {"intent", "confidence", "in_scope", "answer", "product", "slots"}
    unsure = SupportAssistant(Fixed([0.4, 0.35, 0.25]), FAQ, 0.5).reply("hmm")
    assert unsure.intent == HANDOFF_INTENT and not unsure.in_scope
    with pytest.raises(ValueError, match="empty"):
        assistant.reply("  ")
    with pytest.raises(ValueError, match="no answer"):
        SupportAssistant(Fixed([1, 0, 0]), FAQ.iloc[:2], 0.5)


def test_tickets_are_generated_from_non_gallery_photos_and_scored():
    from ecmm.service.tickets import evaluate_tickets, identify_products, make_tickets

    catalog = pd.DataFrame({"sku_id": ["s0", "s1", "s2"], "product_type": ["teapot", "kite", "pen"],
                            "colour": ["red", "blue", "black"]})
    photos = np.arange(3 * 3, dtype=np.uint8).reshape(3, 3, 1, 1, 1).repeat(3, axis=-1)  # pixel = 3*sku + photo
    tickets, images = make_tickets(catalog, photos, num_tickets=6, seed=0, messages={"complaint": ["broken"]})
    assert images.shape == (6, 1, 1, 3) and (tickets["photo"] >= 1).all()
    assert all(images[i, 0, 0, 0] == 3 * int(s[1]) + p for i, (s, p) in enumerate(zip(tickets.sku_id, tickets.photo)))
    assert set(tickets["sku_id"]) <= set(catalog["sku_id"]) and set(tickets["intent"]) == {"complaint"}

    class Search:  # finds the right SKU second, after a wrong one
        def search_image(self, image, k):
            sku = f"s{int(image[0, 0, 0]) // 3}"
            return pd.DataFrame({"sku_id": ["wrong", sku][:k]})

    matches = identify_products(Search(), images, k=5)
    probabilities = np.tile([[0.9, 0.1]], (6, 1))
    scores = evaluate_tickets(tickets, matches, probabilities, ("complaint", "review"))
    assert scores == {"product_top1": 0.0, "product_top5": 1.0, "intent_accuracy": 1.0}
    with pytest.raises(ValueError, match="photos must be"):
        make_tickets(catalog, photos[:, :1], 2)


def test_tickets_from_a_folder_catalog_read_existing_photos_search_accepts(tmp_path):
    from catalog_fixtures import write_folder_catalog

    from ecmm.data.folder import FolderSource
    from ecmm.service.tickets import make_tickets

    source = FolderSource.open(write_folder_catalog(tmp_path, rows=120))
    catalog, photos = source.table(), source.photos()
    reads = []
    read = photos.read
    photos.read = lambda row: reads.append(row) or read(row)  # count the decoded SKUs
    tickets, images = make_tickets(catalog, photos, num_tickets=200, seed=0)
    assert images.shape == (200, *photos.shape[2:]) and images.dtype == np.uint8
    assert tickets["photo"].between(1, photos.shape[1] - 1).all() and tickets["photo"].nunique() > 1
    assert len(reads) == 200  # one SKU decoded per ticket, never the whole catalog
    sku_rows = dict(zip(catalog["sku_id"], range(len(catalog))))
    for i in (0, 57, 199):
        row, view = sku_rows[tickets.loc[i, "sku_id"]], int(tickets.loc[i, "photo"])
        np.testing.assert_array_equal(images[i], read(row)[view])
    same, _ = make_tickets(catalog, np.stack([read(row) for row in range(len(catalog))]), num_tickets=200, seed=0)
    pd.testing.assert_frame_equal(same, tickets)  # a PhotoSet and its array draw the same tickets


def test_tickets_refuse_photos_image_search_would_refuse():
    from ecmm.service.tickets import make_tickets

    catalog = pd.DataFrame({"sku_id": ["s0", "s1"], "product_type": ["teapot", "kite"], "colour": ["red", "blue"]})
    with pytest.raises(ValueError, match="expected uint8"):
        make_tickets(catalog, np.zeros((2, 3, 4, 4, 3), np.float32), 2)
    with pytest.raises(ValueError, match="aligned with the 2 catalog rows"):
        make_tickets(catalog, np.zeros((3, 3, 4, 4, 3), np.uint8), 2)
