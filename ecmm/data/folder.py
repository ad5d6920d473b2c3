"""Your own catalog: one CSV of products and their image files, in one folder.

``catalog.csv`` has one line per product with the columns of :data:`REQUIRED_COLUMNS`::

    sku_id,title,product_type,category,colour,price,description,image
    TS-01,Red cotton t-shirt,t-shirt,apparel,red,19.90,Soft and light.,photos/ts01.jpg;photos/ts01b.jpg

``image`` holds one or more image paths separated by ``;``, relative to the CSV's folder. Any other
column (say ``brand``) becomes an attribute column of the table; a ``split`` column (``train``,
``test_colours``, ``test_products``) is kept, else splits follow the offline rules
(:func:`ecmm.data.catalog.split_table`); an ``emoji`` column is kept, else it is empty.
An optional ``interactions.csv`` beside it (``user_id,sku_id,event,timestamp``, events ``view``,
``cart`` or ``buy``) is the shop's own event log for the recommender.

:meth:`FolderSource.open` checks everything before anything runs: each problem is a
:class:`CatalogError` that names the file, the line and what to do. Images that are missing or do
not decode can be skipped instead (``skip_bad_images=True``, ``--skip-bad-images``): those products
are left out and counted. Photos are decoded when read (real photos first, then jittered copies
up to three); the folder source writes nothing to disk, so a bad catalog leaves no cache behind.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ecmm.data.catalog import CATALOG_COLUMNS, split_table
from ecmm.data.photos import IMAGE_SIZE, PhotoSet, pad_photos

__all__ = ["REQUIRED_COLUMNS", "INTERACTION_COLUMNS", "INTERACTION_EVENTS", "INTERACTIONS_NAME",
           "FOLDER_PHOTOS_PER_SKU", "CatalogError", "FolderPhotos", "FolderSource", "read_interactions"]

REQUIRED_COLUMNS = ("sku_id", "title", "product_type", "category", "colour", "price", "description", "image")
INTERACTION_COLUMNS = ("user_id", "sku_id", "event", "timestamp")
INTERACTION_EVENTS = ("view", "cart", "buy")  # the recommender's event types (ecmm.recsys.interactions)
INTERACTIONS_NAME = "interactions.csv"
FOLDER_PHOTOS_PER_SKU = 3  # real photos first, then jittered copies
SPLITS = ("train", "test_colours", "test_products")
SCHEMA = ",".join(REQUIRED_COLUMNS)
SKIP_HINT = "or pass skip_bad_images=True (CLI: --skip-bad-images) to leave such products out"


class CatalogError(ValueError):
    """A folder catalog that cannot be used, with where and what to do.

    Attributes:
        path: the file at fault (the CSV, an image or ``interactions.csv``).
        row: 1-based line of the CSV file, or None when the whole file is at fault.
        problem: what is wrong, in a few words.
        fix: what to do about it.
    """

    def __init__(self, path: str | Path, row: int | None, problem: str, fix: str) -> None:
        self.path, self.row, self.problem, self.fix = Path(path), row, problem, fix
        where = f"{self.path}, line {row}" if row is not None else str(self.path)
        super().__init__(f"{where}: {problem}. {fix}")


def _text(path: Path, fix_empty: str) -> str:
    """The file's text, refusing a missing, empty or non-UTF-8 file."""
    if not path.is_file():
        raise CatalogError(path, None, "the file does not exist", f"Check the path (a catalog CSV has the columns {SCHEMA}).")
    data = path.read_bytes()
    if not data.strip():
        raise CatalogError(path, None, "the file is empty", fix_empty)
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = start + error.start
        line = data[:offset].count(b"\n") + 1
        raise CatalogError(path, line, f"byte {offset} ({data[offset:offset + 1]!r}) is not UTF-8 text",
                           "Save the file as UTF-8 (in a spreadsheet: Save as 'CSV UTF-8').") from None


def _records(path: Path, text: str, required: tuple[str, ...],
             others: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (lower-case names) and ``(line, {column: stripped cell})`` per non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    records, last_line = [], 0
    try:
        for cells in reader:
            line, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                repeated = sorted({name for name in header if header.count(name) > 1})
                if repeated:
                    raise CatalogError(path, line, f"the header names {repeated} more than once", "Give every column one name.")
                missing = [name for name in required if name not in header]
                if missing:
                    raise CatalogError(path, line, f"the header lacks the columns {missing}",
                                       f"The first line must name the columns {','.join(required)} (any order; {others}).")
                continue
            if len(cells) != len(header):
                raise CatalogError(path, line, f"the line has {len(cells)} fields but the header {len(header)}",
                                   'Put quotes around a field that contains a comma ("Shirt, red").')
            records.append((line, {name: cell.strip() for name, cell in zip(header, cells)}))
    except csv.Error as error:
        raise CatalogError(path, reader.line_num, f"the line is not valid CSV ({error})", "Fix the quoting of that line.") from None
    if not records:
        raise CatalogError(path, None, "the file has a header but no products", "Add one line per product below the header.")
    return header or [], records


def _price(path: Path, line: int, cell: str) -> float:
    try:
        price = float(cell)
    except ValueError:
        price = float("nan")
    if not np.isfinite(price) or price < 0:
        raise CatalogError(path, line, f"the price {cell!r} is not a number",
                           "Write it as a plain non-negative number with a dot for decimals, e.g. 19.90 (no currency sign).")
    return price


def _image_problem(path: Path) -> str | None:
    """None if ``path`` is an image that decodes, else what is wrong with it."""
    if not path.is_file():
        return "is missing"
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:  # verify() leaves the image unusable: decode it again, small
            image.draft("RGB", (IMAGE_SIZE, IMAGE_SIZE))
            image.load()
    except Exception as error:  # noqa: BLE001 -- any decoder failure means the same to the shop owner
        return f"does not decode as an image ({error.__class__.__name__}: {error})"
    return None


def fit_photo(path: str | Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """One image file shrunk to fit ``size`` (aspect kept), centred on white.

    Returns:
        uint8 ``(size, size, 3)``.
    """
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        picture = image.convert("RGBA")
    picture.thumbnail((size, size))
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2), picture)
    return np.asarray(canvas, dtype=np.uint8)


class FolderPhotos(PhotoSet):
    """The products' image files, decoded on access: ``read(row)`` -> uint8 ``(3, 128, 128, 3)``."""

    photos_per_sku = FOLDER_PHOTOS_PER_SKU

    def __init__(self, image_paths: tuple[tuple[str, ...], ...], seed: int = 0) -> None:
        self.image_paths, self.seed = image_paths, seed

    def __len__(self) -> int:
        return len(self.image_paths)

    def read(self, row: int) -> np.ndarray:
        paths = self.image_paths[row][:self.photos_per_sku]
        try:
            real = np.stack([fit_photo(path, self.image_size) for path in paths])
        except OSError as error:
            raise CatalogError(paths[0], None, f"an image of product {row} no longer reads ({error})",
                               "The files changed after the catalog was opened: open it again.") from None
        return pad_photos(real, self.photos_per_sku, seed=[self.seed, row], size=self.image_size)


def read_interactions(path: str | Path, skus: pd.Series, left_out: frozenset[str] = frozenset()) -> pd.DataFrame:
    """A shop's event log, checked line by line against its catalog.

    Args:
        path: ``interactions.csv`` with columns ``user_id, sku_id, event, timestamp``.
        skus: the catalog's ``sku_id`` values.
        left_out: SKUs left out of the catalog for bad images: their events are dropped.

    Returns:
        DataFrame ``user_id, sku_id, event`` (str) and ``timestamp`` (datetime64, UTC without zone),
        in file order.
    """
    path = Path(path)
    text = _text(path, f"Write a header line `{','.join(INTERACTION_COLUMNS)}` and one line per event, or delete the file.")
    _, records = _records(path, text, INTERACTION_COLUMNS, "other columns are ignored")
    known = set(skus.astype(str))
    rows, lines = [], []
    for line, cells in records:
        empty = [name for name in INTERACTION_COLUMNS if not cells[name]]
        if empty:
            raise CatalogError(path, line, f"the cell {empty[0]!r} is empty", "Fill in every column of every event.")
        if cells["sku_id"] in left_out:
            continue
        if cells["sku_id"] not in known:
            raise CatalogError(path, line, f"sku_id {cells['sku_id']!r} is not in the catalog",
                               "Use the sku_id values of catalog.csv (or remove events of products you no longer sell).")
        event = cells["event"].lower()
        if event not in INTERACTION_EVENTS:
            raise CatalogError(path, line, f"the event {cells['event']!r} is unknown", f"Use one of {list(INTERACTION_EVENTS)}.")
        rows.append((cells["user_id"], cells["sku_id"], event, cells["timestamp"]))
        lines.append(line)
    table = pd.DataFrame(rows, columns=list(INTERACTION_COLUMNS))
    times = pd.to_datetime(table["timestamp"], errors="coerce", format="ISO8601", utc=True)
    bad = np.flatnonzero(times.isna().to_numpy())
    if len(bad):
        raise CatalogError(path, lines[bad[0]], f"the timestamp {table['timestamp'].iloc[bad[0]]!r} is not a date",
                           "Write timestamps as ISO dates, e.g. 2024-03-01 or 2024-03-01T14:30:00.")
    table["timestamp"] = times.dt.tz_convert(None)
    return table


@dataclass(frozen=True, eq=False)
class FolderSource:
    """A catalog read from your own folder (see the module docstring for the CSV's format).

    Attributes:
        csv_path: the catalog CSV.
        frame: the table (``CATALOG_COLUMNS`` + attribute columns).
        image_paths: per row, the absolute paths of its image files.
        fingerprint: 16 hex of the CSV's bytes, each image's path, size and mtime, and interactions.csv.
        attribute_columns: the CSV's extra columns.
        skipped: products left out because an image was missing or did not decode.
        skipped_skus: their sku_id values.
        seed: seed of the splits and of the jittered copies.
    """

    csv_path: Path
    frame: pd.DataFrame = field(repr=False)
    image_paths: tuple[tuple[str, ...], ...] = field(repr=False)
    fingerprint: str
    attribute_columns: tuple[str, ...] = ()
    skipped: int = 0
    skipped_skus: tuple[str, ...] = ()
    seed: int = 0
    name: str = "folder"

    @classmethod
    def open(cls, csv_path: str | Path, skip_bad_images: bool = False, *, seed: int = 0) -> "FolderSource":
        """Read and check a catalog CSV and every image it names.

        Args:
            csv_path: the catalog CSV.
            skip_bad_images: leave out products with a missing or undecodable image (counted in
                :attr:`skipped` and :meth:`describe`) instead of refusing the catalog.
            seed: seed of the splits and the jittered photo copies.

        Raises:
            CatalogError: the CSV or an image is unusable (the message names the file and line).
        """
        path = Path(csv_path).expanduser().resolve()
        text = _text(path, f"Write a header line `{SCHEMA}` and one line per product.")
        header, records = _records(path, text, REQUIRED_COLUMNS, "other columns are kept as attributes")
        extra = tuple(name for name in header if name not in REQUIRED_COLUMNS and name not in CATALOG_COLUMNS)
        first_line: dict[str, int] = {}
        for line, cells in records:
            empty = [name for name in REQUIRED_COLUMNS if not cells[name]]
            if empty:
                raise CatalogError(path, line, f"the required cell {empty[0]!r} is empty",
                                   f"Fill in every one of {SCHEMA} for every product.")
            _price(path, line, cells["price"])
            if cells["sku_id"] in first_line:
                raise CatalogError(path, line, f"sku_id {cells['sku_id']!r} is also on line {first_line[cells['sku_id']]}",
                                   "Give every product its own sku_id.")
            first_line[cells["sku_id"]] = line
        kept, paths, problems, digest = [], [], [], hashlib.sha256(path.read_bytes())
        for line, cells in records:
            names = [name.strip() for name in cells["image"].split(";") if name.strip()]
            if not names:
                raise CatalogError(path, line, f"the image cell {cells['image']!r} names no file",
                                   "Give one or more image paths separated by ';'.")
            files = [(path.parent / name) for name in names]
            for name, file in zip(names, files):
                stat = file.stat() if file.is_file() else None
                digest.update(f"\n{name}\t{stat.st_size if stat else -1}\t{stat.st_mtime_ns if stat else -1}".encode())
            problem = next(((name, file, issue) for name, file in zip(names, files)
                            if (issue := _image_problem(file)) is not None), None)
            if problem is None:
                kept.append((line, cells))
                paths.append(tuple(str(file) for file in files))
            else:
                problems.append((line, cells["sku_id"], *problem))
        if problems and not skip_bad_images:
            line, sku, name, file, issue = problems[0]
            more = f" ({len(problems) - 1} more products have bad images)" if len(problems) > 1 else ""
            raise CatalogError(path, line, f"image {name!r} of sku_id {sku!r} {issue} ({file}){more}",
                               f"Fix the path (relative to {path.parent}) or the file, {SKIP_HINT}.")
        if not kept:
            raise CatalogError(path, None, f"every product's images are missing or do not decode (first: line "
                               f"{problems[0][0]}, {problems[0][2]!r} {problems[0][4]})",
                               f"Check that the image paths are relative to {path.parent}.")
        interactions = path.parent / INTERACTIONS_NAME
        if interactions.is_file():
            digest.update(b"\ninteractions\n" + interactions.read_bytes())
        digest.update(f"\nskip={bool(skip_bad_images)} seed={seed}".encode())
        frame = cls._table(path, kept, extra, seed)
        return cls(csv_path=path, frame=frame, image_paths=tuple(paths), fingerprint=digest.hexdigest()[:16],
                   attribute_columns=extra, skipped=len(problems),
                   skipped_skus=tuple(problem[1] for problem in problems), seed=seed)

    @staticmethod
    def _table(path: Path, kept: list[tuple[int, dict[str, str]]], extra: tuple[str, ...], seed: int) -> pd.DataFrame:
        def words(cell: str) -> str:
            return " ".join(cell.split()).lower()

        frame = pd.DataFrame({
            "sku_id": [cells["sku_id"] for _, cells in kept],
            "title": [cells["title"] for _, cells in kept],
            "product_type": [words(cells["product_type"]) for _, cells in kept],
            "category": [words(cells["category"]) for _, cells in kept],
            "colour": [words(cells["colour"]) for _, cells in kept],
            "price": np.array([float(cells["price"]) for _, cells in kept], dtype=np.float64),
            "description": [cells["description"] for _, cells in kept],
            "split": [cells.get("split", "").lower() for _, cells in kept],
            "emoji": [cells.get("emoji", "") for _, cells in kept],
            **{name: [cells[name] for _, cells in kept] for name in extra},
        }, columns=[*CATALOG_COLUMNS, *extra])
        given = frame["split"]
        if not given.eq("").all():
            bad = np.flatnonzero(~given.isin(SPLITS).to_numpy())
            if len(bad):
                raise CatalogError(path, kept[bad[0]][0], f"the split {given.iloc[bad[0]]!r} is unknown",
                                   f"Use one of {list(SPLITS)} on every line, or leave the whole split column empty.")
        else:
            frame["split"] = split_table(frame, seed=seed)
        return frame

    def table(self) -> pd.DataFrame:
        """One row per product: ``CATALOG_COLUMNS`` + :attr:`attribute_columns`; row i is ``photos()[i]``."""
        return self.frame.copy()

    def photos(self) -> FolderPhotos:
        """The products' photos, decoded on access: ``(N, 3, 128, 128, 3)`` uint8."""
        return FolderPhotos(self.image_paths, seed=self.seed)

    @cached_property
    def _events(self) -> pd.DataFrame | None:
        path = self.csv_path.parent / INTERACTIONS_NAME
        if not path.is_file():
            return None
        return read_interactions(path, self.frame["sku_id"], frozenset(self.skipped_skus))

    def interactions(self) -> pd.DataFrame | None:
        """The events of ``interactions.csv`` beside the CSV, or None when there is none.

        Raises:
            CatalogError: a line of ``interactions.csv`` is unusable (the message names it).
        """
        events = self._events
        return None if events is None else events.copy()

    def describe(self) -> str:
        """One line: the CSV, its products and photos, what was skipped and where the events come from."""
        files = sum(len(paths) for paths in self.image_paths)
        skipped = f", {self.skipped:,} left out for missing or unreadable images" if self.skipped else ""
        events = (f"events from {INTERACTIONS_NAME}" if (self.csv_path.parent / INTERACTIONS_NAME).is_file()
                  else f"no {INTERACTIONS_NAME}: shoppers are simulated")
        return (f"folder catalog {self.csv_path}: {len(self.frame):,} products from {files:,} image files, "
                f"{FOLDER_PHOTOS_PER_SKU} photos each (real photos, then jittered copies){skipped}; {events}")
