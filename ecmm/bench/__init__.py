"""Benchmarks: ``python -m ecmm.bench NAME [--json PATH]``. They measure and print; no timing asserts.

Each benchmark is a module here with ``add_parser(subparsers)`` and ``run(args) -> int``.
"""

BENCHMARKS: tuple[str, ...] = ("search", "recommend", "support")  # module names under ecmm.bench
