"""Tests for ecmm.artifacts: one writer and one reader for every cached artefact."""

import hashlib
import json

import pytest

from ecmm import artifacts
from ecmm.artifacts import (CARD_NAME, REPAIR_COMMAND, ArtifactError, artifact_status, card_fingerprint,
                            file_table, forget_verified, read_card, write_artifact)


def _write(folder, payload=b"weights", extra=None):
    def write_files(temporary):
        (temporary / "model.bin").write_bytes(payload)
        (temporary / "notes.txt").write_text("two files")

    return write_artifact(folder, write_files, {"recipe": {"version": 1}, **(extra or {})})


def test_card_lists_every_file_with_size_and_sha256(tmp_path):
    folder = _write(tmp_path / "asset")
    card = read_card(folder)
    assert card["recipe"] == {"version": 1} and "legacy" not in card
    assert card["files"]["model.bin"] == {"size": 7, "sha256": hashlib.sha256(b"weights").hexdigest()}
    assert set(card["files"]) == {"model.bin", "notes.txt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asset"]  # no temporary folder left behind


def test_failed_write_keeps_the_old_folder(tmp_path):
    folder = _write(tmp_path / "asset", b"old weights")

    def crash(temporary):
        (temporary / "model.bin").write_bytes(b"half")
        raise KeyboardInterrupt  # interrupted half-way

    with pytest.raises(KeyboardInterrupt):
        write_artifact(folder, crash, {"recipe": {"version": 2}})
    assert (folder / "model.bin").read_bytes() == b"old weights"
    assert read_card(folder)["recipe"] == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asset"]


def test_writing_nothing_is_an_error_and_keeps_the_old_folder(tmp_path):
    folder = _write(tmp_path / "asset")
    with pytest.raises(RuntimeError, match="wrote nothing"):
        write_artifact(folder, lambda temporary: None, {})
    assert artifact_status(folder) == "ok"


def test_size_is_checked_on_every_read(tmp_path):
    folder = _write(tmp_path / "asset")
    read_card(folder)
    (folder / "model.bin").write_bytes(b"weigh")  # truncated after the first (verified) read
    with pytest.raises(ArtifactError, match="5 bytes, its card says 7") as raised:
        read_card(folder)
    assert str(folder) in str(raised.value) and REPAIR_COMMAND in str(raised.value)


def test_sha256_is_checked_once_per_process(tmp_path, monkeypatch):
    folder = _write(tmp_path / "asset")
    forget_verified()
    calls = []
    real = artifacts.file_sha256
    monkeypatch.setattr(artifacts, "file_sha256", lambda path, *a: calls.append(path) or real(path, *a))
    read_card(folder)
    read_card(folder)
    assert len(calls) == 2  # two files, hashed on the first read only
    (folder / "model.bin").write_bytes(b"WEIGHTS")  # same size, other bytes
    read_card(folder)  # this process already verified the folder: sizes only
    forget_verified(folder)  # a new process
    with pytest.raises(ArtifactError, match="sha256"):
        read_card(folder)
    assert read_card(folder, verify=False)["files"]["model.bin"]["size"] == 7


def test_missing_file_unfinished_folder_and_missing_folder(tmp_path):
    folder = _write(tmp_path / "asset")
    (folder / "notes.txt").unlink()
    assert artifact_status(folder) == "damaged: notes.txt is missing"
    (folder / CARD_NAME).unlink()
    assert artifact_status(folder).startswith("damaged: no card.json")
    assert artifact_status(tmp_path / "never") == "missing"
    with pytest.raises(ArtifactError, match="not built") as raised:
        read_card(tmp_path / "never", command="ecmm prepare")
    assert raised.value.command == "ecmm prepare" and "`ecmm prepare`" in str(raised.value)


@pytest.mark.parametrize("text", ['{"files": {"model.bin": {"size": 7,', "[1, 2]", "\udcff"])
def test_corrupt_card_is_an_artifact_error_not_a_json_traceback(tmp_path, text):
    folder = _write(tmp_path / "asset")
    (folder / CARD_NAME).write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ArtifactError) as raised:
        read_card(folder)
    assert "card.json" in raised.value.problem and str(folder) in str(raised.value)
    assert artifact_status(folder).startswith("damaged: card.json")


def test_card_listing_a_path_outside_the_folder_is_damaged(tmp_path):
    folder = _write(tmp_path / "asset")
    card = json.loads((folder / CARD_NAME).read_text())
    card["files"]["../elsewhere"] = {"size": 1, "sha256": "0"}
    (folder / CARD_NAME).write_text(json.dumps(card))
    assert "without a size" in artifact_status(folder)


def test_legacy_card_loads_and_is_outdated(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"old")
    (folder / CARD_NAME).write_text(json.dumps({"recipe": {"steps": 3000}, "sha256": "abc"}))
    card = read_card(folder)
    assert card["legacy"] is True and card["recipe"] == {"steps": 3000}
    assert artifact_status(folder) == "outdated"
    assert card_fingerprint(card) == card_fingerprint(json.loads((folder / CARD_NAME).read_text()))


def test_fingerprint_follows_the_files(tmp_path):
    first = read_card(_write(tmp_path / "a", b"one"))
    same = read_card(_write(tmp_path / "b", b"one", extra={"metrics": {"loss": 0.1}}))
    other = read_card(_write(tmp_path / "c", b"two"))
    assert card_fingerprint(first) == card_fingerprint(same) != card_fingerprint(other)
    assert len(card_fingerprint(first)) == 16


def test_an_artefact_may_hold_another_one(tmp_path):
    def write_files(temporary):
        _write(temporary / "index")

    folder = write_artifact(tmp_path / "search", write_files, {"asset": "search"})
    assert set(read_card(folder)["files"]) == {"index/card.json", "index/model.bin", "index/notes.txt"}
    assert read_card(folder / "index")["recipe"] == {"version": 1}
    assert set(file_table(folder)) == set(read_card(folder)["files"])


HOLD_LOCK = """
import sys, time
from ecmm.artifacts import build_lock
with build_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(1.5)
    open(sys.argv[3], "w").close()  # the last thing done while holding the lock
"""


def test_build_lock_makes_a_second_process_wait_and_is_reentrant(tmp_path, capfd):
    import subprocess
    import sys
    import time

    folder = tmp_path / "assets" / "clip"
    finished = tmp_path / "finished"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder), str(tmp_path), str(finished)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.perf_counter()
        with artifacts.build_lock(folder, tmp_path):
            waited = time.perf_counter() - start
            assert finished.exists()  # the other process had finished its block
            with artifacts.build_lock(folder, tmp_path):  # the same process may take it again
                pass
    finally:
        holder.wait(timeout=30)
    assert waited > 0.5
    assert "Another process is building" in capfd.readouterr().err
    assert (tmp_path / "locks" / "assets__clip.lock").parent.is_dir()
