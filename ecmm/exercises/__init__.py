"""Checks for the notebooks' exercises: ``ecmm.exercises.check_NN_x(answer)``.

Each notebook ``NN`` keeps its checks in ``ecmm/exercises/notebook_NN.py`` as functions named
``check_NN_<letter>`` that take the learner's answer and return a :class:`Feedback` (it prints as
"Right: ..." or "Not yet: <hint>"). Worked solutions live in ``solutions/`` beside the notebooks,
so they are out of the learner's way; the tests run every check on its solution (it must pass)
and on a wrong answer (it must fail).
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Feedback", "feedback", "is_close", "list_checks"]


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer."""

    correct: bool  # whether the answer is right
    message: str  # what was right, or a hint towards the answer

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        return f"{'Right' if self.correct else 'Not yet'}: {self.message}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        mark = "✅ **Right**" if self.correct else "❌ **Not yet**"
        return f"{mark}: {self.message}"


def feedback(correct: bool, right: str, hint: str) -> Feedback:
    """``Feedback(correct, right if correct else hint)``."""
    return Feedback(bool(correct), right if correct else hint)


def is_close(answer: Any, expected: float, tolerance: float = 1e-3) -> bool:
    """Whether ``answer`` is a finite number within ``tolerance`` (absolute) of ``expected``."""
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and abs(value - expected) <= tolerance


_NAME = re.compile(r"^check_(\d\d)_[a-z]$")


def __getattr__(name: str) -> Any:
    match = _NAME.match(name)
    if match is None:
        raise AttributeError(f"module 'ecmm.exercises' has no attribute {name!r}")
    try:
        module = importlib.import_module(f"ecmm.exercises.notebook_{match.group(1)}")
    except ModuleNotFoundError:
        raise AttributeError(f"no exercise checks for notebook {match.group(1)}") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"notebook {match.group(1)} has no exercise {name!r}") from None


def list_checks() -> list[str]:
    """Every ``check_NN_x`` name the package defines, sorted."""
    import pkgutil

    import ecmm.exercises as package

    names = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("notebook_"):
            module = importlib.import_module(f"ecmm.exercises.{info.name}")
            names += [name for name in vars(module) if _NAME.match(name)]
    return sorted(names)
