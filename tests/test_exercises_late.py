"""Every exercise check of notebooks 06-10 passes on its worked solution and fails on a wrong answer."""

import importlib
import re
from pathlib import Path

import pytest

import ecmm.exercises as exercises

NOTEBOOKS = ("06", "07", "08", "09", "10")
ROOT = Path(__file__).resolve().parents[1]


def cases():
    for number in NOTEBOOKS:
        module = importlib.import_module(f"ecmm.exercises.notebook_{number}")
        for name, (right, wrong) in module.SOLUTIONS.items():
            yield pytest.param(name, right, wrong, id=name)


@pytest.mark.parametrize("name, right, wrong", list(cases()))
def test_check_accepts_the_solution_and_rejects_a_mistake(name, right, wrong):
    check = getattr(exercises, name)  # through the package's lazy lookup, as a notebook calls it
    assert check(right).correct, check(right)
    verdict = check(wrong)
    assert not verdict.correct and verdict.message, verdict


@pytest.mark.parametrize("number", NOTEBOOKS)
def test_every_check_has_a_solution_and_survives_nonsense(number):
    module = importlib.import_module(f"ecmm.exercises.notebook_{number}")
    checks = [name for name in vars(module) if re.match(rf"^check_{number}_[a-z]$", name)]
    assert 2 <= len(checks) <= 4
    assert sorted(checks) == sorted(module.SOLUTIONS)
    for name in checks:
        for nonsense in (None, "abc", [1, 2, 3, 4, 5], float("nan")):
            assert not getattr(module, name)(nonsense).correct


@pytest.mark.parametrize("number", NOTEBOOKS)
def test_notebook_links_its_solutions_and_calls_its_checks(number):
    notebook = next((ROOT / "notebooks").glob(f"{number}_*.ipynb")).read_text(encoding="utf-8")
    module = importlib.import_module(f"ecmm.exercises.notebook_{number}")
    assert f"solutions/{number}_solutions.md" in notebook
    for name in module.SOLUTIONS:
        assert f"{name}(" in notebook, name
    solutions = (ROOT / "notebooks" / "solutions" / f"{number}_solutions.md").read_text(encoding="utf-8")
    for name in module.SOLUTIONS:
        assert name in solutions, name
