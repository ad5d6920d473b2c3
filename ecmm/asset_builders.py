"""Find an asset's builder, key function and recipe version from its ``"module:function"`` name.

The registry (:mod:`ecmm.assets`) names builders as strings so that listing or checking assets
imports nothing heavy. :func:`recipe_version` reads a builder module's ``RECIPE_VERSION`` from its
source when it is written as a literal, so checking a cached asset does not import torch;
:func:`load_function` imports a builder only when it is run.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

__all__ = ["MissingBuilderError", "accepted_arguments", "load_function", "recipe_version", "written_recipe_version"]


class MissingBuilderError(RuntimeError):
    """The registry names a builder that this version of the kit does not have."""


def load_function(reference: str | Callable[..., Any], asset: str, role: str = "built") -> Callable[..., Any]:
    """The callable ``reference`` names (``"module:function"``), imported now; a callable is returned as is.

    Args:
        reference: ``"module:function"`` or a callable (tests pass their own builders).
        asset: the asset's name, for the message.
        role: what the function does for the asset (``"built"``, ``"keyed"``), for the message.

    Raises:
        MissingBuilderError: the module or the function does not exist in this kit.
    """
    if callable(reference):
        return reference
    module_name, _, function_name = reference.partition(":")
    try:
        return getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError):
        raise MissingBuilderError(
            f"the asset {asset!r} is {role} by {module_name}.{function_name}, which this version of "
            "the kit does not have yet") from None


def recipe_version(reference: str | Callable[..., Any]) -> Any:
    """The builder's ``RECIPE_VERSION`` (its module's, or the callable's attribute), or None.

    A module not yet imported is read, not imported, when it assigns the number as a literal (or
    imports it from a module that does).
    """
    if callable(reference):
        return getattr(reference, "RECIPE_VERSION", None)
    module = reference.partition(":")[0]
    written = written_recipe_version(module)
    if written is not None:
        return written
    try:
        return getattr(importlib.import_module(module), "RECIPE_VERSION", None)
    except ImportError:
        return None


def written_recipe_version(module: str, hops: int = 2) -> int | None:
    """``RECIPE_VERSION = <int>`` read from ``module``'s source (following ``from X import
    RECIPE_VERSION`` up to ``hops`` times); None when it is not written that way."""
    if module in sys.modules:
        return getattr(sys.modules[module], "RECIPE_VERSION", None)
    try:
        tree = ast.parse(_source_path(module).read_text(encoding="utf-8"))
    except (ImportError, AttributeError, TypeError, OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RECIPE_VERSION" for t in node.targets):
            value = getattr(node.value, "value", None)
            return value if isinstance(value, int) else None
        if isinstance(node, ast.ImportFrom) and node.module and hops > 0 and node.level == 0 \
                and any(alias.name == "RECIPE_VERSION" and alias.asname is None for alias in node.names):
            return written_recipe_version(node.module, hops - 1)
    return None


def accepted_arguments(builder: Callable[..., Any], arguments: dict[str, Any], asset: str,
                       shop: str | None) -> dict[str, Any]:
    """The ``arguments`` that ``builder`` takes (all of them when it takes ``**options``).

    Args:
        builder: the asset's builder.
        arguments: what the registry would pass (``progress``, ``source``, ``model``).
        asset: the asset's name, for the message.
        shop: the active shop in words when it is not the default one, else None.

    Raises:
        MissingBuilderError: ``shop`` is given and the builder takes no ``source=`` or ``model=``
            that it would need to build for it.
    """
    parameters = inspect.signature(builder).parameters
    if any(parameter.kind == parameter.VAR_KEYWORD for parameter in parameters.values()):
        return arguments
    refused = [name for name in arguments if name not in parameters]
    if refused and shop and set(refused) & {"source", "model"}:
        raise MissingBuilderError(
            f"the builder of {asset!r} does not take {', '.join(f'{name}=' for name in refused)} in this version "
            f"of the kit, so it cannot build it for {shop}")
    return {name: value for name, value in arguments.items() if name in parameters}


def _source_path(module: str) -> Path:
    """The source file of ``module``, found without importing it or its parent packages (importing
    ``ecmm.recsys`` to find ``ecmm.recsys.pipeline`` would load torch).

    Raises:
        ImportError: it is not found.
    """
    first, *rest = module.split(".")
    spec = sys.modules[first].__spec__ if first in sys.modules else importlib.util.find_spec(first)
    for part in rest:
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(module)
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    if spec is None or not spec.origin:
        raise ImportError(module)
    return Path(spec.origin)
