"""Every exercise check of notebooks 00-05 passes its worked solution and rejects a wrong answer.

Each ``ecmm/exercises/notebook_NN.py`` keeps ``SOLUTIONS = {"check_NN_x": (right, wrong)}``
beside its checks (see the docstring of ``ecmm.exercises.notebook_01``); notebooks 06-10 are
covered by ``tests/test_exercises_late.py``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import ecmm.exercises as exercises

NOTEBOOKS = ("00", "01", "02", "03", "04", "05")
CHECKS = [name for name in exercises.list_checks() if name.split("_")[1] in NOTEBOOKS]
SOLUTIONS_DIR = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"


def _solutions(name: str) -> tuple:
    module = importlib.import_module(f"ecmm.exercises.notebook_{name.split('_')[1]}")
    assert name in module.SOLUTIONS, f"{module.__name__}.SOLUTIONS has no entry for {name}"
    return module.SOLUTIONS[name]


def test_every_early_notebook_has_two_to_four_exercises() -> None:
    for number in NOTEBOOKS[:5]:
        count = sum(name.split("_")[1] == number for name in CHECKS)
        assert 2 <= count <= 4, f"notebook {number} has {count} exercise checks"


@pytest.mark.parametrize("name", CHECKS)
def test_check_accepts_its_solution(name: str) -> None:
    right, _ = _solutions(name)
    verdict = getattr(exercises, name)(right)
    assert verdict.correct, f"{name} rejects its own solution: {verdict}"
    assert str(verdict).startswith("Right: ")


@pytest.mark.parametrize("name", CHECKS)
def test_check_rejects_a_wrong_answer_with_a_hint(name: str) -> None:
    _, wrong = _solutions(name)
    verdict = getattr(exercises, name)(wrong)
    assert not verdict.correct, f"{name} accepts the wrong answer {wrong!r}"
    assert str(verdict).startswith("Not yet: ") and len(verdict.message) > 10


@pytest.mark.parametrize("name", CHECKS)
def test_check_survives_a_missing_answer(name: str) -> None:
    """The notebooks call each check with ``None`` until the learner answers."""
    for answer in (None, "no idea", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]):
        assert not getattr(exercises, name)(answer).correct


@pytest.mark.parametrize("name", [n for n in CHECKS if n.split("_")[1] in NOTEBOOKS[:5]])
def test_check_has_a_worked_solution(name: str) -> None:
    number, letter = name.split("_")[1:]
    path = SOLUTIONS_DIR / f"{number}_solutions.md"
    assert path.is_file(), f"no worked solutions file {path.name}"
    assert f"## Exercise {number}-{letter}" in path.read_text(encoding="utf-8")


def test_unknown_checks_raise_attribute_errors() -> None:
    with pytest.raises(AttributeError):
        exercises.check_00_z  # noqa: B018
