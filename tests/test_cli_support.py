"""``ecmm support``: bad input fails fast with one line and exit status 2 (no model is loaded)."""

import json

import numpy as np
import pytest

from ecmm.cli import main


def _fail_if_loaded(*args, **kwargs):
    raise AssertionError("the classifier must not be loaded for bad input")


@pytest.fixture(autouse=True)
def _no_model(monkeypatch):
    monkeypatch.setattr("ecmm.cli.support.load_support_classifier", _fail_if_loaded)


@pytest.mark.parametrize("message", ["", "   "])
def test_empty_message_exits_2_with_one_line(message, capsys):
    assert main(["support", message]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "message is empty" in error


def test_missing_image_exits_2(tmp_path, capsys):
    assert main(["support", "where is my order?", "--image", str(tmp_path / "nope.png")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "cannot read image" in error


def test_corrupt_image_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"this is not a jpeg")
    assert main(["support", "it arrived broken", "--image", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "cannot read image" in error and "Traceback" not in error


def test_read_image_returns_rgb_array(tmp_path):
    from PIL import Image

    from ecmm.cli.support import read_image

    Image.fromarray(np.full((5, 4), 200, dtype=np.uint8)).save(tmp_path / "grey.png")  # greyscale file
    image = read_image(str(tmp_path / "grey.png"))
    assert image.shape == (5, 4, 3) and image.dtype == np.uint8


def test_json_output_has_the_documented_keys(monkeypatch, capsys):
    class Fixed:
        label_names = ("track_order", "contact_human_agent")

        def predict_proba(self, texts):
            return np.array([[0.9, 0.1]])

    monkeypatch.setattr("ecmm.cli.support.load_support_classifier", lambda: (Fixed(), 0.5))
    assert main(["support", "where is order EC-123456?", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"intent", "confidence", "in_scope", "answer", "product"}
    assert result["intent"] == "track_order" and result["in_scope"] is True


def test_classifier_is_trained_once_then_loaded_from_the_cache(monkeypatch, tmp_path):
    import pandas as pd
    from test_service_intents import INTENT_OF, TEXTS, FakeEncoder

    from ecmm.cli import support

    monkeypatch.undo()  # use the real loader in this test
    monkeypatch.setenv("ECMM_HOME", str(tmp_path))
    words = {word for text in TEXTS for word in text.split()}
    monkeypatch.setattr("ecmm.models.load_text_encoder", lambda *args, **kwargs: FakeEncoder(words))
    frame = pd.DataFrame({"text": TEXTS * 2, "intent": INTENT_OF * 2, "split": ["train"] * 12 + ["validation"] * 12})
    monkeypatch.setattr("ecmm.data.intents.load_intents", lambda profile=None: frame)
    trained, threshold = support.load_support_classifier(device="cpu")
    card = json.loads((tmp_path / support.CACHE_FOLDER / support.CARD_FILE).read_text())
    assert card["threshold"] == threshold and len(card["sha256"]) == 64
    monkeypatch.setattr("ecmm.data.intents.load_intents", _fail_if_loaded)  # second call must not train
    loaded, loaded_threshold = support.load_support_classifier(device="cpu")
    assert loaded_threshold == threshold
    assert np.allclose(loaded.predict_proba(TEXTS), trained.predict_proba(TEXTS), atol=1e-6)
