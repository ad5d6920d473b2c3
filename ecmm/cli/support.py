"""``ecmm support "MESSAGE" [--image PATH] [--json]``: answer a customer message like a first-line agent.

Prints ``{intent, confidence, in_scope, answer, product}``. The intent classifier (MiniLM fine-tuned
end to end with a softmax head) is trained on first use and cached under ``ECMM_HOME/service/``
as safetensors + a JSON card; later calls only load it. Its probabilities are temperature-scaled and
its rejection threshold chosen, both on the validation split (stored in the card).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

CACHE_FOLDER = "service/support_classifier"  # under ECMM_HOME
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"


def add_parser(subparsers) -> None:
    """Register ``support``."""
    parser = subparsers.add_parser("support", help="answer a customer-service message (optionally with a photo)")
    parser.add_argument("message", help="the customer's message, in quotes")
    parser.add_argument("--image", metavar="PATH", help="a photo of the product the message is about")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def read_image(path: str) -> np.ndarray:
    """Read a photo as a uint8 (H, W, 3) array; ValueError with a one-line reason if unreadable."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise ValueError(f"cannot read image {path!r}: no such file")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read image {path!r}: not a PNG/JPEG photo ({type(error).__name__})") from None


def _calibrate(classifier) -> dict:
    """Fit the temperature, then choose the rejection threshold, both on the validation split."""
    from ecmm.data.intents import load_intents
    from ecmm.service.confidence import apply_temperature, choose_threshold, fit_temperature
    from ecmm.service.intents import encode_intents, evaluate_intents

    frame = load_intents(profile="offline")
    validation = frame[frame.split == "validation"]
    probabilities = classifier.predict_proba(validation["text"].tolist())  # (N, K)
    temperature = fit_temperature(probabilities, encode_intents(validation["intent"], classifier.label_names))
    calibrated = apply_temperature(probabilities, temperature)
    return {"temperature": temperature, "threshold": choose_threshold(calibrated.max(axis=1)),
            "metrics": {"validation": evaluate_intents(probabilities, validation["intent"], classifier.label_names)}}


def _train_and_save(folder: Path):
    """Fine-tune the support classifier on the train split, choose its threshold, save both."""
    from safetensors.torch import save_file

    from ecmm.config import atomic_write, write_json
    from ecmm.data.intents import INTENTS, load_intents
    from ecmm.models import load_text_encoder
    from ecmm.models.text import sha256_of
    from ecmm.service.confidence import TemperatureScaledClassifier
    from ecmm.service.intents import FineTuneConfig, FineTunedIntentClassifier

    frame = load_intents(profile="offline")
    train = frame[frame.split == "train"]
    config = FineTuneConfig()
    print("Training the support classifier once (about a minute on a laptop CPU); it is then cached.")
    start = time.perf_counter()
    classifier = FineTunedIntentClassifier(load_text_encoder(), INTENTS, config, seed=0)
    classifier.fit(train["text"].tolist(), train["intent"].tolist())
    seconds = time.perf_counter() - start
    calibration = _calibrate(classifier)
    weights = folder / WEIGHTS_FILE
    with atomic_write(weights) as temporary:
        state = {key: value.detach().contiguous().cpu() for key, value in classifier.state_dict().items()}
        save_file(state, str(temporary))
    write_json(folder / CARD_FILE, {
        "recipe": {"model": "all-MiniLM-L6-v2 fine-tuned + SoftmaxHead", **asdict(config), "seed": 0},
        "data": {"intents": "ecmm.data.load_intents(profile='offline')", "train_rows": len(train)},
        "label_names": list(INTENTS), "train_seconds": round(seconds, 1), **calibration,
        "sha256": sha256_of(weights),
    })
    return TemperatureScaledClassifier(classifier, calibration["temperature"]), calibration["threshold"]


def load_support_classifier(device=None):
    """The cached support classifier and its rejection threshold (trained on first use).

    Returns:
        ``(classifier, threshold)``: the fine-tuned classifier (eval mode) wrapped in a
        :class:`~ecmm.service.confidence.TemperatureScaledClassifier`, and the confidence threshold.
        A card written before calibration existed gets its temperature and threshold fitted once.
    """
    from safetensors.torch import load_file

    from ecmm.config import get_settings, write_json
    from ecmm.models import load_text_encoder
    from ecmm.service.confidence import TemperatureScaledClassifier
    from ecmm.models.text import verify_sha256
    from ecmm.service.intents import FineTuneConfig, FineTunedIntentClassifier

    folder = get_settings().home / CACHE_FOLDER
    card_path = folder / CARD_FILE
    if not card_path.is_file():  # the card is written last: no card means no finished model
        return _train_and_save(folder)
    card = json.loads(card_path.read_text())
    verify_sha256(folder / WEIGHTS_FILE, card["sha256"])
    fields = set(FineTuneConfig.__dataclass_fields__)
    config = FineTuneConfig(**{k: v for k, v in card["recipe"].items() if k in fields})
    classifier = FineTunedIntentClassifier(load_text_encoder(), card["label_names"], config, device=device)
    classifier.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    classifier.eval()
    if "temperature" not in card:  # cached before calibration was added: calibrate once, keep it
        card.update(_calibrate(classifier))
        write_json(card_path, card)
    return TemperatureScaledClassifier(classifier, card["temperature"]), float(card["threshold"])


def _find_product(image: np.ndarray) -> str:
    from ecmm.search import load_catalog_search

    best = load_catalog_search().search_image(image, k=1).iloc[0]
    return f"{best['colour']} {best['product_type']} ({best['sku_id']})"


def run(args: argparse.Namespace) -> int:
    """Answer the message; one-line errors (exit 2) for an empty message or an unreadable image."""
    from ecmm.cli import UsageError

    message = (args.message or "").strip()
    if not message:
        raise UsageError("the message is empty: write what the customer asked, e.g. \"where is my order?\"")
    image = read_image(args.image) if args.image else None
    from ecmm.data.intents import load_faq
    from ecmm.service.replies import SupportAssistant

    classifier, threshold = load_support_classifier()
    assistant = SupportAssistant(classifier, load_faq(), threshold,
                                 product_finder=_find_product if image is not None else None)
    reply = assistant.reply(message, image=image)
    result = {key: value for key, value in reply.to_dict().items() if key != "slots"}
    result["confidence"] = round(result["confidence"], 4)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    status = "in scope" if reply.in_scope else "handed to a human agent"
    print(f"intent:     {reply.intent}  (confidence {reply.confidence:.2f}, {status})")
    print(f"product:    {reply.product or '-'}")
    print(f"answer:     {reply.answer}")
    return 0
