"""Sphinx extension: serve MathJax from the built site instead of a CDN, so math renders offline.

Sphinx loads MathJax 3 from a CDN by default; a learner reading the book without internet
would see raw LaTeX. When the ``jupyter-server-mathjax`` package (MathJax 2.7, from the
Jupyter project) is installed, this extension points ``mathjax_path`` at a local copy and
copies it into ``_build/html/_static/mathjax/`` when the build finishes. Without the package
the CDN default stays (and the browser test in ``tests/test_book.py`` reports it).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config

LOCAL_MATHJAX_PATH = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
# The package ships only the STIX-Web fonts (as the classic Jupyter Notebook used them).
# MathJax measures a blank font loaded from url('about:blank'), which the browser logs as a
# blocked font request; a local() source that does not exist measures the same, silently.
LOCAL_MATHJAX_CONFIG = {
    "HTML-CSS": {
        "availableFonts": [], "webFont": "STIX-Web", "imageFont": None, "preferredFont": None,
        "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "local('MathJax_Blank')"}},
    },
    "SVG": {"font": "STIX-Web"},
}


def find_local_mathjax() -> Path | None:
    """Find the MathJax folder shipped by ``jupyter-server-mathjax``, without importing it.

    Returns:
        The folder holding ``MathJax.js``, or None when the package is not installed.
    """
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "static"
    return folder if (folder / "MathJax.js").is_file() else None


def _use_local_mathjax(app: Sphinx, config: Config) -> None:
    """Point Sphinx at the local MathJax 2 (its configuration replaces the v3 one)."""
    if find_local_mathjax() is None:
        return
    config.mathjax_path = LOCAL_MATHJAX_PATH
    config.mathjax3_config = None
    config.mathjax2_config = LOCAL_MATHJAX_CONFIG
    config.myst_update_mathjax = False  # myst would otherwise write a MathJax 3 configuration


def _copy_local_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy MathJax into the built site's ``_static/mathjax`` after an HTML build."""
    folder = find_local_mathjax()
    if exception is not None or folder is None or app.builder.format != "html":
        return
    shutil.copytree(folder, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def setup(app: Sphinx) -> dict[str, bool]:
    """Register the hooks (the Sphinx extension entry point)."""
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_local_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
