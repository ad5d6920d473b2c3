"""Progress bars that render in notebooks and terminals and stay quiet in logs.

``progress_bar`` is ``tqdm.auto.tqdm`` with one difference: when stderr is not a terminal and
the code is not running in a Jupyter kernel (a CI log, ``ecmm ... 2> file``, a pipe), the bar
does not redraw; it writes one line when it starts and one when it ends (with the count and
the time taken). ``ECMM_PROGRESS=always|never|auto`` overrides the choice.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable

__all__ = ["progress_bar", "interactive_output"]


def interactive_output() -> bool:
    """Whether bars may redraw: a Jupyter kernel, or stderr is a terminal (``ECMM_PROGRESS`` wins)."""
    choice = os.environ.get("ECMM_PROGRESS", "auto").lower()
    if choice in ("always", "never"):
        return choice == "always"
    if "ipykernel" in sys.modules:
        try:
            from IPython import get_ipython

            shell = get_ipython()
            if shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell":
                return True
        except ImportError:  # pragma: no cover - IPython ships with ipykernel
            pass
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class _LogBar:
    """The quiet stand-in: the same calls as a tqdm bar, two lines of output in all."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, disable: bool) -> None:
        self.iterable, self.desc, self.disable = iterable, desc or "working", disable
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.total, self.n, self.postfix, self.start = total, 0, "", time.perf_counter()
        self._closed = False
        if not disable:
            size = f" ({total} steps)" if total is not None else ""
            print(f"{self.desc}: started{size}", file=sys.stderr, flush=True)

    def __iter__(self):
        for item in self.iterable or ():
            yield item
            self.n += 1
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def __enter__(self) -> "_LogBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        values = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or self.desc

    def refresh(self) -> None:
        pass

    def write(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable:
            extra = f", {self.postfix}" if self.postfix else ""
            print(f"{self.desc}: done, {self.n} steps in {time.perf_counter() - self.start:.1f} s{extra}",
                  file=sys.stderr, flush=True)


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 disable: bool = False, leave: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar in notebooks and terminals; a start line and an end line in logs.

    Args:
        iterable: what to iterate over (or None and call ``update``).
        total: number of steps when ``iterable`` has no length.
        desc: label.
        disable: no output at all.
        leave: keep the finished bar on screen (terminal / notebook only).
        kwargs: passed to tqdm when it is used.

    Returns:
        A tqdm bar or a quiet bar with the same methods (``update``, ``set_postfix``, ``close``,
        context manager, iteration).
    """
    if disable or not interactive_output():
        return _LogBar(iterable, total, desc, disable)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=leave, **kwargs)
