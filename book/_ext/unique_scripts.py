"""Sphinx extension: drop repeated inline scripts from each page.

With Sphinx 7.x, sphinx-thebe's inline configuration script (``const THEBE_JS_URL = ...``) is
registered twice, and the second copy raises ``SyntaxError: Identifier 'THEBE_JS_URL' has
already been declared`` in the browser (sphinx-togglebutton's is doubled too, harmlessly).
This keeps the first copy of each script.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str,
                           context: dict[str, Any], doctree: Any) -> None:
    """Keep one copy of each (file, inline body) pair in the page's script list."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in scripts:
        filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
        key = (str(filename), str(getattr(script, "attributes", {}).get("body", "")))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict[str, bool]:
    """Register the hook (the Sphinx extension entry point)."""
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
