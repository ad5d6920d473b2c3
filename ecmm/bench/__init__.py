"""Benchmarks: ``python -m ecmm.bench NAME [--json PATH]``. They measure and print; no timing asserts.

Each benchmark is a module here with ``add_parser(subparsers)`` and ``run(args) -> int``.
"""

BENCHMARKS: tuple[str, ...] = ("search", "recommend", "support")  # module names under ecmm.bench


def write_results(path: str, results: dict) -> None:
    """Write a benchmark's results as indented JSON at ``path`` (folders created) and say where."""
    import json
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2))
    print(f"wrote {target}")
