"""Tests for ecmm.progress: bars redraw only where someone watches; a log gets two lines per bar."""

import io

import pytest

from ecmm import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_start_and_an_end_line_for_a_thousand_steps(capsys, monkeypatch):
    monkeypatch.delenv("ECMM_PROGRESS", raising=False)  # auto: pytest's captured stderr is no terminal
    assert not progress.interactive_output()
    total = 0
    for value in progress.progress_bar(range(1000), desc="scan"):
        total += value
    assert total == 499500  # every item went through
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "scan: started (1000 steps)" and lines[1].startswith("scan: done, 1000 steps in ")
    assert len(lines) == 2 and "\r" not in "".join(lines)


def test_manual_updates_and_postfix_reach_the_end_line(capsys, monkeypatch):
    monkeypatch.setenv("ECMM_PROGRESS", "never")
    with progress.progress_bar(total=7, desc="fit") as bar:
        for _ in range(3):
            bar.update(2)
        bar.set_postfix(loss=0.25)
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("fit: done, 6 steps in ") and lines[-1].endswith("loss=0.25") and len(lines) == 2


def test_disable_writes_nothing(capsys, monkeypatch):
    monkeypatch.setenv("ECMM_PROGRESS", "always")
    list(progress.progress_bar(range(5), disable=True))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("choice, terminal, expected", [
    ("never", True, False), ("always", False, True), ("auto", True, True), ("auto", False, False)])
def test_the_choice_follows_ecmm_progress_then_the_terminal(monkeypatch, choice, terminal, expected):
    monkeypatch.setenv("ECMM_PROGRESS", choice)
    monkeypatch.setattr("sys.stderr", _Terminal() if terminal else io.StringIO())
    assert progress.interactive_output() is expected


def test_a_terminal_gets_a_real_tqdm_bar(monkeypatch):
    from tqdm.auto import tqdm

    monkeypatch.setenv("ECMM_PROGRESS", "always")
    monkeypatch.setattr("sys.stderr", io.StringIO())
    bar = progress.progress_bar(range(3), desc="draw", file=io.StringIO())
    assert isinstance(bar, tqdm)
    bar.close()
