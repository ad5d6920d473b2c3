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


class _ModeSearch:
    def __init__(self):
        self.calls = []

    def search_text(self, query, k=10, mode=None):
        self.calls.append((query, k, mode))
        import pandas as pd

        return pd.DataFrame([{"sku_id": "S1", "title": "red bag", "product_type": "bag", "colour": "red",
                              "category": "travel", "score": 0.5}])

    def understand(self, query):
        return {"colours": ["red"], "product_types": ["bag"]}

    def answer(self, query, k=10, mode=None):
        return self.search_text(query, k, mode), self.understand(query)


def test_mode_is_passed_and_the_understood_constraints_are_printed(monkeypatch, capsys):
    import ecmm.app

    search = _ModeSearch()
    monkeypatch.setattr(ecmm.app, "load_search", lambda **kwargs: search)
    assert main(["search", "  red bag ", "--mode", "lexical", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert search.calls == [("red bag", 3, "lexical")]
    assert out.splitlines()[0] == "understood: colours = ['red'], product_types = ['bag']" and "S1" in out
    assert main(["search", "red bag", "--json"]) == 0  # JSON on stdout, the constraints on stderr
    captured = capsys.readouterr()
    assert captured.out.lstrip().startswith("[") and "understood" in captured.err
    assert search.calls[-1] == ("red bag", 10, None)


def test_an_unknown_mode_is_one_line_like_the_server(capsys):
    from fastapi.testclient import TestClient

    from ecmm.serving import Backends, create_app

    assert main(["search", "bag", "--mode", "magic"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "ecmm search: error: mode must be one of dense, lexical, hybrid; got 'magic'"
    client = TestClient(create_app(Backends(search=_ModeSearch)))
    response = client.get("/search", params={"q": "bag", "mode": "magic"})
    assert response.status_code == 422 and error.endswith(response.json()["detail"])
    assert client.get("/search", params={"q": "bag", "mode": "hybrid"}).status_code == 200
