import json
from pathlib import Path

import pytest

from ecmm.config import Settings, atomic_write, get_settings, record_metrics, write_json


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ECMM_PROFILE", "hub")
    monkeypatch.setenv("ECMM_QUICK", "0")
    monkeypatch.setenv("ECMM_HOME", str(tmp_path))
    settings = get_settings()
    assert (settings.profile, settings.quick, settings.home) == ("hub", False, tmp_path)
    assert get_settings(profile="offline", quick=True).profile == "offline"


def test_bad_profile_and_flag_say_what_to_do(monkeypatch):
    with pytest.raises(ValueError, match="ECMM_PROFILE"):
        Settings(profile="cloud")
    monkeypatch.setenv("ECMM_QUICK", "maybe")
    with pytest.raises(ValueError, match="1 or 0"):
        get_settings()


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path):
    target = tmp_path / "card.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as temporary:
            temporary.write_text("half-writ")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]  # no temporary left behind


def test_atomic_write_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_json(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}


def test_record_metrics_saves_json(monkeypatch, tmp_path):
    monkeypatch.setenv("ECMM_HOME", str(tmp_path))
    table = record_metrics("99_test", {"accuracy": 0.5})
    saved = list(Path(tmp_path, "metrics").glob("99_test.*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["metrics"] == {"accuracy": 0.5}
    assert table.loc["accuracy", "value"] == 0.5
