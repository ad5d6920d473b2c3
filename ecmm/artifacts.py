"""One writer and one reader for every cached artefact (the io layer).

An artefact is a folder under ``ECMM_HOME`` with its files and a ``card.json`` written last. The
card records what built the folder (``recipe``, ``data``, ``metrics``, free keys) and, under
``files``, the size and sha256 of every file in it. So:

- a folder without a card is unfinished and is never trusted;
- a file whose size differs from its card is damaged (checked on every read, it is free);
- a card without a file list was written by an older kit: it still loads (so an old cache keeps
  working) and ``ecmm prepare`` rebuilds it;
- a file whose sha256 differs is damaged (checked once per process and folder, see
  :func:`read_card`; hashing the kit's largest artefact, the catalog photos ``images.npy``,
  257,556,608 bytes, took 0.19-0.21 s on one core with the file in the page cache).

:func:`write_artifact` builds into a temporary sibling folder and swaps it in only when every
file and the card are written, so an interrupted (or forced) rebuild never loses a good folder.
:func:`build_lock` lets one process at a time build a folder (two notebooks, or two test workers,
that need the same missing asset: the second waits, then finds it built). Every error names the
folder and the command that repairs it (:data:`REPAIR_COMMAND`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

__all__ = ["ArtifactError", "REPAIR_COMMAND", "CARD_NAME", "assets_home", "write_artifact", "read_card",
           "artifact_status", "file_sha256", "forget_verified", "replace_folder", "card_fingerprint",
           "file_table", "build_lock"]

CARD_NAME = "card.json"
REPAIR_COMMAND = "ecmm prepare --repair"

_VERIFIED: set[tuple[str, int, int]] = set()  # (folder, card inode, card mtime ns) whose sha256s were checked


def assets_home() -> Path:
    """``ECMM_HOME/assets``: where trained artefacts (models, classifiers, indexes) live."""
    from ecmm.config import get_settings

    return get_settings().home / "assets"


class ArtifactError(RuntimeError):
    """A cached artefact is missing, unfinished or damaged; the message says what to run."""

    def __init__(self, folder: Path, problem: str, command: str = REPAIR_COMMAND) -> None:
        self.folder, self.problem, self.command = Path(folder), problem, command
        super().__init__(f"{problem} in {folder}: run `{command}` to rebuild it")


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 hex digest of a file, read in 4 MB chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def file_table(folder: str | Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"size": bytes, "sha256": hex}}`` of every file under ``folder`` but its card.

    Sub-folders are included (``"index/card.json"``), so an artefact may hold another one.
    """
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": file_sha256(path)}
            for path in sorted(folder.rglob("*")) if path.is_file() and path != folder / CARD_NAME}


def replace_folder(new: str | Path, folder: str | Path) -> Path:
    """Move the finished folder ``new`` onto ``folder``; the old ``folder`` goes only after that.

    Two renames on one file system: at every moment ``folder`` is either the old complete
    folder or the new complete one (between the renames, briefly, absent: a reader then sees
    "not built", never a mix of old and new files).
    """
    new, folder = Path(new), Path(folder)
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)
    forget_verified(folder)
    return folder


@contextlib.contextmanager
def build_lock(folder: str | Path, home: str | Path) -> Iterator[None]:
    """Hold the build lock of ``folder`` (an operating-system file lock, freed if the process dies).

    The lock file is ``home/locks/<folder's path under home, "/" as "__">.lock``, outside the
    folders that are swapped. The lock is re-entrant in one process. When another process holds
    it, one line on stderr says so before waiting.
    """
    from filelock import FileLock, Timeout  # only when a build needs it: its import takes tens of ms

    folder, home = Path(folder).resolve(), Path(home).resolve()
    try:
        relative = folder.relative_to(home).as_posix()
    except ValueError:
        relative = folder.as_posix().strip("/")
    path = home / "locks" / (relative.replace("/", "__") + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), is_singleton=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"Another process is building {folder}: waiting for it (lock {path}).", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def write_artifact(folder: str | Path, write_files: Callable[[Path], None], card: Mapping[str, Any]) -> Path:
    """Build an artefact atomically: files first, the card (with every file's sha256) last.

    Args:
        folder: the final folder, e.g. ``ECMM_HOME/assets/clip``.
        write_files: ``write_files(temporary_folder)`` writes the artefact's files there.
        card: JSON-serialisable description (recipe, data, metrics, ...); ``files`` is added.

    Returns:
        ``folder``, now holding the new files; an older folder is replaced only on success.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        write_files(temporary)
        files = file_table(temporary)
        if not files:
            raise RuntimeError(f"write_files wrote nothing into {temporary}")
        full_card = {**card, "files": files}
        (temporary / CARD_NAME).write_text(json.dumps(full_card, indent=2, sort_keys=True, default=str) + "\n")
        replace_folder(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def card_fingerprint(card: Mapping[str, Any]) -> str:
    """16 hex digits that change whenever an artefact's files change (its sha256 table).

    A card without a file list (an older kit's) is fingerprinted whole. Dependants record the
    fingerprints of what they were built from, so a rebuilt dependency makes them outdated.
    """
    files = card.get("files") if isinstance(card.get("files"), dict) and card.get("files") else None
    payload = files if files is not None else {key: value for key, value in card.items() if key != "legacy"}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _load_card(folder: Path, command: str) -> dict:
    card_path = folder / CARD_NAME
    if not card_path.is_file():
        problem = "no card.json (never built, or its build was interrupted)" if folder.exists() else "not built"
        raise ArtifactError(folder, problem, command)
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(folder, f"card.json is unreadable ({error.__class__.__name__})", command) from None
    if not isinstance(card, dict):
        raise ArtifactError(folder, "card.json is not a JSON object", command)
    if not isinstance(card.get("files"), dict) or not card["files"]:
        card["legacy"] = True  # written by an older kit: loads, and `ecmm prepare` rebuilds it
    return card


def read_card(folder: str | Path, verify: bool = True, command: str = REPAIR_COMMAND) -> dict:
    """The card of a finished artefact, after checking its files.

    Sizes are checked on every call; sha256s once per process and folder (``verify=False``
    skips them).

    Raises:
        ArtifactError: the folder is missing, unfinished, or a file is missing or damaged.
    """
    folder = Path(folder)
    card = _load_card(folder, command)
    if card.get("legacy"):
        return card
    for name, expected in card["files"].items():
        path = folder / name
        if not isinstance(expected, dict) or Path(name).is_absolute() or ".." in Path(name).parts or not name:
            raise ArtifactError(folder, f"card.json lists {name!r} without a size and sha256", command)
        if not path.is_file():
            raise ArtifactError(folder, f"{name} is missing", command)
        if path.stat().st_size != expected.get("size"):
            raise ArtifactError(folder, f"{name} has {path.stat().st_size} bytes, its card says "
                                f"{expected.get('size')} (damaged)", command)
    card_stat = (folder / CARD_NAME).stat()
    key = (str(folder.resolve()), card_stat.st_ino, card_stat.st_mtime_ns)
    if verify and key not in _VERIFIED:
        for name, expected in card["files"].items():
            if file_sha256(folder / name) != expected.get("sha256"):
                raise ArtifactError(folder, f"{name} does not match its card's sha256 (damaged)", command)
        _VERIFIED.add(key)
    return card


def artifact_status(folder: str | Path, verify: bool = True) -> str:
    """``"ok"``, ``"missing"``, ``"outdated"`` (a card without file list) or ``"damaged: <why>"``.

    With ``verify`` (default) a full check: sha256s are read again even if verified earlier in
    this process; ``verify=False`` checks the card and the file sizes only (no file is read).
    """
    folder = Path(folder)
    if not (folder / CARD_NAME).exists() and not folder.exists():
        return "missing"
    if verify:
        forget_verified(folder)
    try:
        card = read_card(folder, verify=verify)
    except ArtifactError as error:
        return "missing" if error.problem == "not built" else f"damaged: {error.problem}"
    return "outdated" if card.get("legacy") else "ok"


def forget_verified(folder: str | Path | None = None) -> None:
    """Drop the memo of verified folders (one folder, or all), so the next read hashes again."""
    if folder is None:
        _VERIFIED.clear()
        return
    resolved = str(Path(folder).resolve())
    for key in [key for key in _VERIFIED if key[0] == resolved]:
        _VERIFIED.discard(key)
