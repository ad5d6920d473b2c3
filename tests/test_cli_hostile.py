"""The command line on hostile but fair input: one line on stderr, exit status 2, no traceback,
the same limits and messages as the server (every case is the exact input that used to fail)."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

import ecmm.app
from ecmm.app import LIMITS
from ecmm.cli import main
from test_serving import bomb_png


def _fail_if_loaded(*args, **kwargs):
    raise AssertionError("no model may be loaded for bad input")


@pytest.fixture(autouse=True)
def _no_models(monkeypatch):
    for name in ("load_search", "load_support", "load_recommender"):
        monkeypatch.setattr(ecmm.app, name, _fail_if_loaded)


def one_line_error(capsys, argv, code=2):
    assert main(argv) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err and captured.out == ""
    return lines[0]


@pytest.mark.parametrize("argv", [["search", b"red \xff bag"], ["support", b"hi \xff"]])
def test_text_that_is_not_utf8_is_one_line(capsys, argv):
    text = os.fsdecode(argv[1])  # what Python puts in sys.argv for such bytes
    assert "not valid UTF-8" in one_line_error(capsys, [argv[0], text])


def test_real_non_utf8_argv_in_a_subprocess():
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "ECMM_HOME": "/nonexistent/ecmm-home"}
    result = subprocess.run([sys.executable, "-m", "ecmm.cli", "search", b"red \xff bag"], capture_output=True,
                            env=environment, timeout=120)
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert result.stderr.decode("utf-8", "replace").strip().endswith(
        "the query is not valid UTF-8 text (byte 0xff at character 4); type it again as UTF-8")


@pytest.mark.parametrize("command", [["search", "--image"], ["support", "it arrived broken", "--image"]])
def test_a_bomb_and_a_huge_image_are_one_line(tmp_path, capsys, command):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    assert "4096x4096" in one_line_error(capsys, command + [str(bomb)])
    huge = tmp_path / "huge.png"
    Image.new("L", (10_000, 10_000)).save(huge)  # a real 10000x10000 PNG (a few hundred kB)
    assert "the image is 10000x10000 pixels; send at most 4096x4096" in one_line_error(capsys, command + [str(huge)])


def test_an_unknown_device_is_one_line_naming_the_choices(capsys, monkeypatch):
    monkeypatch.setenv("ECMM_DEVICE", "tpu")
    error = one_line_error(capsys, ["info"])
    assert "'tpu'" in error and "cpu, cuda, cuda:N or mps" in error


def _server_detail(path, **params):
    from fastapi.testclient import TestClient
    from test_serving import FakeSearch, fake_recommend, fake_support

    from ecmm.serving import Backends, create_app

    client = TestClient(create_app(Backends(search=lambda: FakeSearch(), recommend=lambda: fake_recommend,
                                            support=lambda: fake_support)))
    if path == "/support":
        body = json.dumps(params).encode()  # ASCII escapes, so a lone surrogate travels as \ud800
        return client.post(path, content=body, headers={"content-type": "application/json"}).json()["detail"]
    return client.get(path, params=params).json()["detail"]


@pytest.mark.parametrize("argv, path, params", [
    (["search", "x" * (LIMITS.query_characters + 1)], "/search", {"q": "x" * (LIMITS.query_characters + 1)}),
    (["support", "x" * (LIMITS.message_characters + 1)], "/support", {"message": "x" * (LIMITS.message_characters + 1)}),
    (["search", "  "], "/search", {"q": "  "}),
    (["support", "where \ud800 order"], "/support", {"message": "where \ud800 order"}),
    (["recommend", "--user", "x" * 65], "/recommend", {"user": "x" * 65}),
    (["recommend", "--user", "u00001", "--k", "100000"], "/recommend", {"user": "u00001", "k": 100000}),
    (["search", "bag", "--k", "101"], "/search", {"q": "bag", "k": 101}),
])
def test_the_command_and_the_server_give_the_same_answer(capsys, argv, path, params):
    error = one_line_error(capsys, argv)
    detail = _server_detail(path, **params)
    assert error.endswith(detail.replace("k must", "--k must"))
    assert "under" not in error and "at most" in error or "empty" in error or "UTF-8" in error or "between" in error


def test_the_limits_are_inclusive_on_both(capsys, monkeypatch):
    class Results:
        def to_string(self, index=False):
            return "ok"

    class Search:
        def answer(self, query, k, mode=None):
            return Results(), {}

    monkeypatch.setattr(ecmm.app, "load_search", lambda **kwargs: Search())
    assert main(["search", "x" * LIMITS.query_characters]) == 0  # at most 200: 200 is accepted
    assert main(["search", "bag", "--k", str(LIMITS.search_k)]) == 0
    assert _server_detail("/search", q="x" * (LIMITS.query_characters + 1)).endswith(
        f"use at most {LIMITS.query_characters}")


def test_a_reader_that_stops_early_gets_no_traceback():
    """`ecmm info | head -0`: the pipe is closed before the command writes; it exits 0, quietly."""
    process = subprocess.Popen([sys.executable, "-m", "ecmm.cli", "info"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "ECMM_QUICK": "1"})
    process.stdout.close()  # the reader is gone before the first line
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
