"""The support classifier as a cached artefact: built once, loaded after, damage refused; `ecmm support
--json` prints only JSON even on the run that trains it (a tiny fake encoder, a temporary ECMM_HOME)."""

import json

import numpy as np
import pandas as pd
import pytest
from test_service_intents import INTENT_OF, TEXTS, FakeEncoder

from ecmm.artifacts import REPAIR_COMMAND, ArtifactError
from ecmm.cli import main
from ecmm.service.assistant import WEIGHTS_FILE, build_support_classifier, load_support_classifier


def _fail(*args, **kwargs):
    raise AssertionError("must not train again")


@pytest.fixture()
def tiny_intents(monkeypatch, tmp_path):
    monkeypatch.setenv("ECMM_HOME", str(tmp_path / "home"))
    words = {word for text in TEXTS for word in text.split()}
    monkeypatch.setattr("ecmm.models.load_text_encoder", lambda *args, **kwargs: FakeEncoder(words))
    frame = pd.DataFrame({"text": TEXTS * 2, "intent": INTENT_OF * 2, "split": ["train"] * 12 + ["validation"] * 12})
    monkeypatch.setattr("ecmm.data.intents.load_intents", lambda profile=None: frame)
    return tmp_path


def test_classifier_is_built_once_then_loaded(tiny_intents, monkeypatch):
    folder = tiny_intents / "support"
    build_support_classifier(folder, progress=False)
    card = json.loads((folder / "card.json").read_text())
    assert len(card["files"][WEIGHTS_FILE]["sha256"]) == 64 and card["temperature"] > 0
    monkeypatch.setattr("ecmm.data.intents.load_intents", _fail)
    first, threshold = load_support_classifier(folder, device="cpu")
    second, again = load_support_classifier(folder, device="cpu")
    assert threshold == again == card["threshold"]
    assert np.allclose(first.predict_proba(TEXTS), second.predict_proba(TEXTS), atol=1e-6)


def test_truncated_weights_are_refused_with_the_repair_command(tiny_intents):
    folder = build_support_classifier(tiny_intents / "support", progress=False)
    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="ecmm prepare --repair"):
        load_support_classifier(folder)


def test_support_json_prints_only_json_on_the_first_run(tiny_intents, capsys):
    """Issue item 12: the first run trains; its notice goes to stderr, stdout is one JSON document."""
    assert main(["support", "where is my order", "--json"]) == 0
    captured = capsys.readouterr()
    reply = json.loads(captured.out)
    assert set(reply) == {"intent", "confidence", "in_scope", "answer", "product"}
    assert "Training the support classifier once" in captured.err and "about a minute" not in captured.err
    assert main(["support", "where is my order", "--json"]) == 0  # cached now: loads, does not train
    second = capsys.readouterr()
    assert json.loads(second.out) == reply and "Training" not in second.err


def test_a_damaged_cache_is_one_line_naming_the_repair(tiny_intents, capsys, monkeypatch):
    from ecmm.assets import asset_dir

    assert main(["support", "where is my order", "--json"]) == 0
    capsys.readouterr()
    weights = asset_dir("support") / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-10])
    monkeypatch.setattr("ecmm.assets.ensure_asset", lambda name, **kwargs: asset_dir(name))  # no auto repair
    code = main(["support", "where is my order", "--json"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    lines = captured.err.strip().splitlines()  # the line naming the catalog and model, then the error
    assert len(lines) == 2 and "error:" in lines[1] and REPAIR_COMMAND in lines[1] and "Traceback" not in captured.err
