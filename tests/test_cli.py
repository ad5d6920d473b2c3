import json

import pytest

from ecmm.cli import main


def test_info_reports_counts(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["profile"] == "offline" and info["prepared"]["catalog"]
    counts = info["counts"]
    assert counts["product_types"] >= 120 and counts["colours"] == 10 and counts["photos_per_sku"] >= 3
    assert counts["intents"] == 27 and counts["min_templates_per_intent"] >= 30 and counts["faq_entries"] >= 27


def test_info_text_mentions_device_and_cache(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "device:" in out and "cache:" in out


def test_prepare_check_reads_the_cache_and_builds_nothing(capsys):
    assert main(["prepare", "--check", "--only", "catalog", "source"]) in (0, 1)  # 1: something to repair
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["asset", "status", "path"]
    assert {line.split()[0] for line in lines[1:3]} == {"catalog", "source"}


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2


def test_unknown_asset_is_rejected_by_argparse():
    with pytest.raises(SystemExit) as raised:
        main(["prepare", "--only", "everything"])
    assert raised.value.code == 2
