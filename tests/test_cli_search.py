"""``ecmm search`` rejects bad input with one line on stderr and exit status 2 (no model needed)."""

import pytest

from ecmm.cli import main


@pytest.mark.parametrize("argv,message", [
    (["search", ""], "query is empty"),
    (["search", "   "], "query is empty"),
    (["search"], "query is empty"),
    (["search", "x" * 500], "characters"),
    (["search", "red backpack", "--k", "0"], "--k"),
    (["search", "red backpack", "--k", "-3"], "--k"),
    (["search", "--image", "/nonexistent/photo.png"], "no such image"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert captured.out == ""


def test_unreadable_image_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.png"
    path.write_bytes(b"this is not a png")
    assert main(["search", "--image", str(path)]) == 2
    assert "cannot read image" in capsys.readouterr().err


def test_search_is_registered():
    from ecmm.cli import COMMANDS

    assert "search" in COMMANDS
