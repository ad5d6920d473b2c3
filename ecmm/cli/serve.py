"""``ecmm serve [--host 127.0.0.1] [--port 8000] [--catalog CSV] [--model SPEC]``: serve the shop over HTTP.

Serves search, recommendations and support for the shop's catalog (your own with ``--catalog``);
the page shows that catalog's photos.

Starts the FastAPI app of :mod:`ecmm.serving` with uvicorn.  Models load lazily on the first
request that needs them (the first search may take a while if the shop model is not cached yet:
run ``ecmm search "bag"`` once beforehand).  Open ``http://HOST:PORT/`` for the search page;
the API's schema is at ``/openapi.json`` (the interactive ``/docs`` are off: they would load a CDN).
"""

from __future__ import annotations

import argparse

from ecmm.cli import UsageError, add_shop_options, announce_shop

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register ``serve``."""
    parser = subparsers.add_parser("serve", help="serve search, recommendations and support as a web API")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                        help="uvicorn log level")
    add_shop_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run the server until interrupted; returns the exit status."""
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535; got {args.port}")
    announce_shop("serve")
    import uvicorn

    from ecmm.serving import create_app

    print(f"ecmm serve: http://{args.host}:{args.port}/  (API schema at /openapi.json; Ctrl-C to stop)", flush=True)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level)
    return 0
