"""Build the ecmm Jupyter Book: execute every notebook, then render static HTML (``make book``).

1. Execute every ``notebooks/NN_*.ipynb`` in order with nbclient into ``book/notebooks/`` (a
   build product, ignored by git), one progress line per notebook. A notebook whose cell
   sources did not change since its last successful execution in the same mode is skipped
   (the sha256 is kept in ``NN_name.stamp.json`` beside the copy). A failing cell stops the
   build with a message naming the notebook and the cell.
2. Copy the worked solutions (``notebooks/solutions/NN_solutions.md``) beside the executed copies,
   each exercise's solution behind a toggle (a ``dropdown``), so the notebooks' links to
   ``solutions/NN_solutions.md`` resolve in the book too.
3. Build static HTML with ``jupyter-book build`` (Jupyter Book 1, execution off) under
   ``book/_build/html``, and print where to open it.

Usage: ``python book/build.py [--quick] [--force] [--only-execute | --skip-execute]``. The full
offline profile (``ECMM_QUICK=0``) is the default; ``--quick`` or ``ECMM_QUICK=1`` runs the small
test sizes; ``--force`` re-executes unchanged notebooks too (the hash covers the notebooks, not
``ecmm/``). ``book/_toc.yml`` lists the executed copies with a glob: a new notebook needs no edit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

BOOK_DIR = Path(__file__).resolve().parent
REPOSITORY_DIR = BOOK_DIR.parent
SOURCE_DIR = REPOSITORY_DIR / "notebooks"
EXECUTED_DIR = BOOK_DIR / "notebooks"
SOLUTIONS_NAME = re.compile(r"^\d\d_solutions\.md$")
EXERCISE_HEADING = re.compile(r"^## Exercise ", flags=re.MULTILINE)
NOTEBOOK_NAME = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")
STAMP_SUFFIX = ".stamp.json"  # written next to each executed copy
# Run in each kernel before the notebook: tqdm.auto would draw ipywidgets, whose saved output is
# the bar's first frame (0 %) and needs scripts from a CDN; text bars show their final state.
TEXT_PROGRESS_BARS = ("import tqdm.auto, tqdm.autonotebook, tqdm.std; "
                      "tqdm.auto.tqdm = tqdm.autonotebook.tqdm = tqdm.std.tqdm; "
                      "tqdm.auto.trange = tqdm.autonotebook.trange = tqdm.std.trange")


@dataclass(frozen=True)
class ExecutionOptions:
    """How notebooks are executed."""

    quick: bool = False  # ECMM_QUICK=1 (CI size) instead of the full offline profile
    cell_timeout_seconds: int = 1800  # the longest a single cell may run
    kernel_name: str = "python3"  # the Jupyter kernel (the venv's ipykernel)


class NotebookFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook and the cell."""


def find_notebooks(source_dir: Path = SOURCE_DIR) -> list[Path]:
    """List the course notebooks ``NN_name.ipynb`` of ``source_dir``, sorted by number."""
    if not source_dir.is_dir():
        raise FileNotFoundError(f"{source_dir} does not exist: run from a checkout of ecmm.")
    notebooks = sorted(p for p in source_dir.iterdir() if NOTEBOOK_NAME.match(p.name))
    if not notebooks:
        raise FileNotFoundError(f"No NN_name.ipynb notebooks in {source_dir}: nothing to build.")
    return notebooks


def source_hash(notebook_path: Path) -> str:
    """Return the hex sha256 of the notebook's cell types and sources (outputs ignored)."""
    notebook = nbformat.read(notebook_path, as_version=4)
    cells = [[cell.cell_type, cell.source] for cell in notebook.cells]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode("utf-8")).hexdigest()


def stamp_path(executed_path: Path) -> Path:
    """Where the stamp of an executed copy lives (``NN_name.stamp.json`` beside it)."""
    return executed_path.with_name(executed_path.stem + STAMP_SUFFIX)


def is_fresh(source_path: Path, executed_path: Path, quick: bool | None) -> bool:
    """Tell whether an executed copy still matches its source notebook.

    Args:
        source_path: the committed notebook.
        executed_path: its executed copy.
        quick: the mode wanted; ``None`` accepts a copy executed in either mode.

    Returns:
        True when copy and stamp exist, the sources hash the same and the mode fits.
    """
    stamp_file = stamp_path(executed_path)
    if not (executed_path.is_file() and stamp_file.is_file()):
        return False
    stamp = json.loads(stamp_file.read_text(encoding="utf-8"))
    same_mode = quick is None or stamp.get("quick") == quick
    return same_mode and stamp.get("sha256") == source_hash(source_path)


def collapse_carriage_returns(text: str) -> str:
    """Keep what a terminal shows: per line, the last non-empty part after a carriage return.

    ``"\\r 0%|  | 0/3\\r100%|##| 3/3\\n"`` (a redrawn progress bar) becomes ``"100%|##| 3/3\\n"``.
    """
    parts_per_line = ([part for part in line.split("\r") if part] for line in text.split("\n"))
    return "\n".join(parts[-1] if parts else "" for parts in parts_per_line)


def tidy_streams(notebook: nbformat.NotebookNode) -> None:
    """Merge consecutive same-name stream outputs and collapse carriage returns, in place.

    JupyterLab redraws a progress bar on one line; the site shows its final state once.
    """
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        merged: list[nbformat.NotebookNode] = []
        for output in cell.outputs:
            previous = merged[-1] if merged else None
            if output.output_type == "stream" and previous is not None \
                    and previous.output_type == "stream" and previous.name == output.name:
                previous.text += output.text
            else:
                merged.append(output)
        for output in merged:
            if output.output_type == "stream":
                output.text = collapse_carriage_returns(output.text)
        cell.outputs = merged


def _environment(quick: bool) -> dict[str, str]:
    """The kernel's environment: offline profile unless the caller chose, quick as asked."""
    environment = dict(os.environ)
    environment.setdefault("ECMM_PROFILE", "offline")
    environment["ECMM_QUICK"] = "1" if quick else "0"
    environment.pop("MPLBACKEND", None)  # let ipykernel choose the inline backend (figures)
    return environment


def execute_notebook(source_path: Path, executed_path: Path, options: ExecutionOptions) -> float:
    """Execute one notebook top to bottom (kernel in the notebook's folder); write copy and stamp.

    A partly executed notebook that failed is saved under ``book/_build/failed/``; the kernel's
    own stderr goes to ``book/_build/logs/``.

    Args:
        source_path, executed_path: the committed notebook; where its executed copy goes.
        options: mode, cell timeout and kernel.

    Returns:
        The execution time in seconds.

    Raises:
        NotebookFailed: a cell raised or timed out, or the kernel died (notebook and cell named).
    """
    notebook = nbformat.read(source_path, as_version=4)
    sha256 = source_hash(source_path)  # of what is executed, even if the file is edited meanwhile
    client = NotebookClient(
        notebook,
        timeout=options.cell_timeout_seconds,
        kernel_name=options.kernel_name,
        resources={"metadata": {"path": str(source_path.parent)}},
        extra_arguments=[f"--IPKernelApp.exec_lines={TEXT_PROGRESS_BARS}"],
    )
    start = time.perf_counter()
    kernel_environment = _environment(options.quick)  # computed before os.environ is cleared
    saved_environment = dict(os.environ)
    os.environ.clear()
    os.environ.update(kernel_environment)  # the kernel inherits this environment
    build_dir = executed_path.parent.parent / "_build"  # book/_build
    (build_dir / "logs").mkdir(parents=True, exist_ok=True)
    kernel_log_path = build_dir / "logs" / f"{source_path.stem}.kernel.log"  # the kernel's stderr
    try:
        with open(kernel_log_path, "w", encoding="utf-8") as kernel_log, \
                client.setup_kernel(stderr=kernel_log):
            for index, cell in enumerate(notebook.cells):
                try:
                    client.execute_cell(cell, index)
                except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
                    failed_path = build_dir / "failed" / source_path.name
                    failed_path.parent.mkdir(parents=True, exist_ok=True)
                    nbformat.write(notebook, failed_path)
                    first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                    message = str(getattr(error, "evalue", error)).strip().splitlines() or ["(no message)"]
                    reason = f"{getattr(error, 'ename', type(error).__name__)}: {message[-1]}"
                    raise NotebookFailed(
                        f"{source_path.name} failed in cell {index + 1} of {len(notebook.cells)} "
                        f"(`{first_line[:60]}`): "
                        f"{reason}\nPartly executed copy: {_shown(failed_path)}; kernel log: "
                        f"{_shown(kernel_log_path)}. "
                        f"Fix the notebook, then run `make book` again."
                    ) from None
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
    seconds = time.perf_counter() - start
    tidy_streams(notebook)
    executed_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = executed_path.with_name(executed_path.name + ".tmp")
    nbformat.write(notebook, temporary)
    temporary.replace(executed_path)  # atomic: a half-written copy is never trusted
    stamp = {"sha256": sha256, "quick": options.quick, "seconds": round(seconds, 1)}
    stamp_path(executed_path).write_text(json.dumps(stamp, indent=1), encoding="utf-8")
    return seconds


def execute_all(
    options: ExecutionOptions,
    source_dir: Path = SOURCE_DIR,
    executed_dir: Path = EXECUTED_DIR,
    accept_either_mode: bool = False,
    force: bool = False,
) -> dict[str, float | None]:
    """Execute every stale notebook in order, one progress line each; remove orphaned copies.

    Args:
        options: mode, cell timeout and kernel.
        source_dir, executed_dir: the committed notebooks; where the executed copies go.
        accept_either_mode: reuse a fresh copy even if it was executed in the other mode.
        force: execute every notebook, fresh or not (after a change inside ``ecmm/``).

    Returns:
        Seconds per notebook name; ``None`` for a notebook skipped as fresh.
    """
    notebooks = find_notebooks(source_dir)
    mode = "quick" if options.quick else "full"
    print(f"Executing {len(notebooks)} notebooks ({mode} mode) into {_shown(executed_dir)}/", flush=True)
    timings: dict[str, float | None] = {}
    for position, source_path in enumerate(notebooks, start=1):
        executed_path = executed_dir / source_path.name
        prefix = f"[{position}/{len(notebooks)}] {source_path.name}"
        if not force and is_fresh(source_path, executed_path, None if accept_either_mode else options.quick):
            print(f"{prefix}: unchanged since its last execution, skipped", flush=True)
            timings[source_path.name] = None
            continue
        print(f"{prefix}: executing ...", flush=True)
        timings[source_path.name] = execute_notebook(source_path, executed_path, options)
        print(f"{prefix}: done in {timings[source_path.name]:.1f} s", flush=True)
    _remove_orphans(notebooks, executed_dir)
    return timings


def _remove_orphans(notebooks: list[Path], executed_dir: Path) -> None:
    """Delete executed copies whose source notebook was removed or renamed."""
    names = {path.name for path in notebooks}
    for executed_path in executed_dir.glob("*.ipynb"):
        if executed_path.name not in names:
            executed_path.unlink()
            stamp_path(executed_path).unlink(missing_ok=True)


def write_execution_times(executed_dir: Path) -> Path:
    """Write ``execution_times.md`` (included by the introduction) from the stamps' timings."""
    rows = ["| notebook | mode | seconds |", "| --- | --- | ---: |"]
    total = 0.0
    for stamp_file in sorted(executed_dir.glob("*" + STAMP_SUFFIX)):
        stamp = json.loads(stamp_file.read_text(encoding="utf-8"))
        name = stamp_file.name.replace(STAMP_SUFFIX, "")
        mode = "quick" if stamp["quick"] else "full"
        rows.append(f"| {name} | {mode} | {stamp['seconds']:.0f} |")
        total += stamp["seconds"]
    rows.append(f"| **all notebooks** | | **{total:.0f}** |")
    note = (f"Measured by `book/build.py` on a machine with {os.cpu_count()} CPU cores; "
            "`quick` rows come from the small test-size runs.")
    path = executed_dir / "execution_times.md"
    path.write_text("\n".join(rows) + "\n\n" + note + "\n", encoding="utf-8")
    return path


def solutions_behind_toggles(markdown: str) -> str:
    """Wrap the body of every ``## Exercise ...`` section in a MyST ``dropdown`` (closed by default).

    The text before the first exercise (title and note) stays visible; so do the headings.
    """
    parts = EXERCISE_HEADING.split(markdown)
    sections = []
    for part in parts[1:]:
        heading, _, body = part.partition("\n")
        sections.append(f"## Exercise {heading}\n\n:::{{dropdown}} Show the worked solution\n{body.strip()}\n:::\n")
    return parts[0].rstrip() + "\n\n" + "\n".join(sections)


def copy_solutions(source_dir: Path = SOURCE_DIR, executed_dir: Path = EXECUTED_DIR) -> list[Path]:
    """Write each ``solutions/NN_solutions.md`` into ``executed_dir/solutions/``, solutions behind toggles.

    Returns:
        The written pages, sorted; copies whose source was removed are deleted.
    """
    target_dir = executed_dir / "solutions"
    target_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in (source_dir / "solutions").glob("*.md") if SOLUTIONS_NAME.match(p.name))
    written = []
    for source in sources:
        target = target_dir / source.name
        target.write_text(solutions_behind_toggles(source.read_text(encoding="utf-8")), encoding="utf-8")
        written.append(target)
    for stale in set(target_dir.glob("*.md")) - set(written):
        stale.unlink()
    return written


def build_html(book_dir: Path = BOOK_DIR) -> Path:
    """Render ``book_dir`` (``_config.yml``, ``_toc.yml``) to HTML; return the site's index.html."""
    executed_dir = book_dir / "notebooks"
    if not any(executed_dir.glob("*.ipynb")):
        raise FileNotFoundError(
            f"No executed notebooks in {_shown(executed_dir)}: run `python book/build.py` "
            "without --skip-execute first."
        )
    write_execution_times(executed_dir)
    copy_solutions(book_dir.parent / "notebooks", executed_dir)
    executable = Path(sys.executable).with_name("jupyter-book")
    command = [str(executable) if executable.exists() else "jupyter-book", "build", str(book_dir)]
    print(f"Building HTML with {' '.join(['jupyter-book', 'build', _shown(book_dir)])}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=book_dir.parent, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-6000:] + result.stderr[-6000:])
        raise RuntimeError(f"jupyter-book build failed (exit {result.returncode}); see the log above.")
    for line in result.stderr.splitlines() + result.stdout.splitlines():
        if "WARNING" in line or "ERROR" in line:
            print(f"  {line}", flush=True)
    index = book_dir / "_build" / "html" / "index.html"
    print(f"HTML built in {time.perf_counter() - start:.1f} s", flush=True)
    return index


def _shown(path: Path) -> str:
    """A path relative to the repository when possible (no absolute paths in logs)."""
    try:
        return str(path.resolve().relative_to(REPOSITORY_DIR))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="execute in quick mode (ECMM_QUICK=1)")
    parser.add_argument("--force", action="store_true", help="re-execute unchanged notebooks too")
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument("--only-execute", action="store_true", help="execute notebooks, build no HTML")
    steps.add_argument("--skip-execute", action="store_true", help="build HTML from the executed copies")
    arguments = parser.parse_args(argv)
    quick = arguments.quick or os.environ.get("ECMM_QUICK", "0") == "1"
    total_start = time.perf_counter()
    try:
        if not arguments.skip_execute:
            execute_all(ExecutionOptions(quick=quick), force=arguments.force)
        if not arguments.only_execute:
            index = build_html()
            print(f"Open the book: {_shown(index)} (file://{index})", flush=True)
    except (NotebookFailed, FileNotFoundError, RuntimeError) as error:
        print(f"Book build stopped: {error}", file=sys.stderr)
        return 1
    print(f"Total: {time.perf_counter() - total_start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
