"""Exercise checks for notebook 00 (the shop, its splits and the source domain).

Conventions: see :mod:`ecmm.exercises.notebook_01`.
"""

from __future__ import annotations

from typing import Any

from ecmm.exercises import Feedback, feedback

__all__ = ["check_00_a", "check_00_b", "SOLUTIONS"]


def split_sizes(num_types: int, colours: int = 10, unseen_share: float = 0.2,
                held_out_colours: int = 2) -> tuple[int, int, int]:
    """(train, test_colours, test_products) SKU counts of a catalog built like the shop's."""
    unseen = round(unseen_share * num_types)
    seen = num_types - unseen
    return seen * (colours - held_out_colours), seen * held_out_colours, unseen * colours


def check_00_a(answer: Any) -> Feedback:
    """Exercise 00-a: SKU counts (train, test_colours, test_products) of a 150-type shop."""
    expected = split_sizes(150)
    try:
        given = tuple(int(value) for value in answer)
    except (TypeError, ValueError):
        return Feedback(False, "Give three whole numbers: (train, test_colours, test_products).")
    if given == expected:
        return Feedback(True, f"{expected}: unseen types contribute all ten colours, seen types two.")
    if len(given) == 3 and sum(given) == 1500:
        return Feedback(False, "The total is right (150 × 10); now split it: 20 % of the types go "
                               "to test_products in every colour, the others keep 2 colours back.")
    return Feedback(False, "Start from 150 × 10 = 1,500 SKUs; 30 types are unseen; each of the "
                           "120 seen types holds back 2 of its 10 colours.")


SCENARIOS = {
    "a purple backpack, when backpacks were fine-tuned in other colours": "test_colours",
    "a product type that never appears in fine-tuning": "test_products",
    "a red shoe whose photos were used in fine-tuning": "train",
}


def check_00_b(answer: Any) -> Feedback:
    """Exercise 00-b: which split measures each scenario of ``SCENARIOS``."""
    if not isinstance(answer, dict):
        return Feedback(False, "Answer with a dict: scenario -> split name (train, test_colours, test_products).")
    wrong = [scenario for scenario, split in SCENARIOS.items() if str(answer.get(scenario, "")).strip() != split]
    return feedback(not wrong, "each split tests one kind of generalisation.",
                    f"look again at: {wrong}. test_colours = seen type, unseen colour; "
                    "test_products = unseen type.")


# For the tests: each check's solution answer and a wrong answer (see notebook_01's docstring).
SOLUTIONS = {
    "check_00_a": ((960, 240, 300), (1200, 300, 0)),
    "check_00_b": (dict(SCENARIOS), {**SCENARIOS, "a product type that never appears in fine-tuning": "test_colours"}),
}
