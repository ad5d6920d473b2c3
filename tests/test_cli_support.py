"""``ecmm support``: bad input fails fast with one line and exit status 2 (no model is loaded)."""

import json

import numpy as np
import pytest

import ecmm.app
from ecmm.cli import main
from ecmm.data.intents import load_faq
from ecmm.service.replies import SupportAssistant


def _fail_if_loaded(*args, **kwargs):
    raise AssertionError("the classifier must not be loaded for bad input")


@pytest.fixture(autouse=True)
def _no_model(monkeypatch):
    monkeypatch.setattr(ecmm.app, "load_support", _fail_if_loaded)


class Fixed:
    label_names = ("track_order", "contact_human_agent")

    def predict_proba(self, texts):
        return np.array([[0.9, 0.1]] * len(texts))


@pytest.mark.parametrize("message", ["", "   "])
def test_empty_message_exits_2_with_one_line(message, capsys):
    assert main(["support", message]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "message is empty" in error


def test_missing_image_exits_2(tmp_path, capsys):
    assert main(["support", "where is my order?", "--image", str(tmp_path / "nope.png")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no such image" in error


def test_corrupt_image_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"this is not a jpeg")
    assert main(["support", "it arrived broken", "--image", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "cannot read image" in error and "Traceback" not in error


def test_message_limit_is_the_servers(monkeypatch, capsys):
    limit = ecmm.app.LIMITS.message_characters
    assert main(["support", "x" * (limit + 1)]) == 2
    assert f"has {limit + 1} characters; use at most {limit}" in capsys.readouterr().err
    monkeypatch.setattr(ecmm.app, "load_support", lambda **kwargs: SupportAssistant(Fixed(), load_faq(), 0.5))
    assert main(["support", "x" * limit, "--json"]) == 0  # at the limit: accepted
    assert json.loads(capsys.readouterr().out)["intent"] == "track_order"


def test_json_output_has_the_documented_keys(monkeypatch, capsys):
    monkeypatch.setattr(ecmm.app, "load_support", lambda **kwargs: SupportAssistant(Fixed(), load_faq(), 0.5))
    assert main(["support", "where is order EC-123456?", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"intent", "confidence", "in_scope", "answer", "product"}
    assert result["intent"] == "track_order" and result["in_scope"] is True
