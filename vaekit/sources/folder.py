"""Image folders: recursive listing, class labels from sub-folders, an optional labels CSV.

Layouts understood (``root`` is the path given to ``vaekit``)::

    root/*.png                          unlabelled images
    root/<class>/**/*.png               class labels from the first sub-folder level
    root/<split>/<class>/**/*.png       split folders (train, val/valid/validation, test)
    root/labels.csv                     filename,label  or  filename,<attr>,<attr>,...

A labels CSV overrides folder labels. Its first column names an image by its
path relative to ``root`` (or by its bare file name when that is unique); a
column called ``label`` or ``class`` holds class names, any other columns are
0/1 attributes (-1/1 and true/false are accepted too).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from vaekit.dataset import UNLABELLED, ImageDataset
from vaekit.errors import DataError
from vaekit.imageio import is_image_file
from vaekit.sources.cache import decode_files

LABELS_CSV = "labels.csv"
SPLIT_DIRS = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}
CLASS_COLUMNS = ("label", "class", "labels", "category")
TRUE = {"1", "1.0", "true", "yes", "y"}
FALSE = {"0", "0.0", "-1", "false", "no", "n", ""}


def list_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursive, hidden entries skipped), sorted. Only
    regular files count: a pipe or device named ``*.png`` would hang or never end a read."""
    found: list[Path] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            Path(directory) / name
            for name in sorted(filenames)
            if is_image_file(name) and os.path.isfile(os.path.join(directory, name))
        )
    return found


def has_images(root: Path) -> bool:
    """Whether any image file lies under ``root`` (stops at the first one)."""
    for _, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(is_image_file(name) for name in filenames):
            return True
    return False


def load_folder(
    root: Path,
    labels: str | None = None,
    channels: int | None = None,
    image_size: int | None = None,
    skip_bad: bool = False,
) -> ImageDataset:
    """Read an image folder (see the module docstring) into an :class:`ImageDataset`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"'{root}' is not a folder; give a folder of images or pass --dataset")
    files = list_images(root)
    if not files:
        raise no_images_error(root)
    files = without_undecodable_names(files, root, skip_bad)
    rel = [f.relative_to(root).as_posix() for f in files]
    split, class_dirs = _folder_structure(rel)

    csv_path = _labels_csv(root, labels)
    class_names = attribute_names = None
    label_ids = attributes = None
    if csv_path is not None:
        label_ids, class_names, attributes, attribute_names = read_labels_csv(csv_path, rel)
    elif class_dirs is not None:
        class_names = sorted({c for c in class_dirs if c is not None})
        index = {name: i for i, name in enumerate(class_names)}
        label_ids = np.array(
            [UNLABELLED if c is None else index[c] for c in class_dirs], dtype=np.int64
        )

    decoded = decode_files(
        files, root, "folder", channels=channels, image_size=image_size, skip_bad=skip_bad
    )
    kept = decoded.kept
    report_skipped(decoded.skipped)

    def take(a):
        return None if a is None else a[kept]

    return ImageDataset(
        images=decoded.images,
        ids=np.asarray(rel, dtype=str)[kept],
        source="folder",
        location=str(root),
        labels=take(label_ids),
        class_names=class_names,
        attributes=take(attributes),
        attribute_names=attribute_names,
        split=take(split),
        fingerprint=decoded.signature,
    )


def no_images_error(root: Path) -> DataError:
    """The one message for a folder without images (docs/datasets.md#bad-input)."""
    return DataError(
        f"no images found in '{root}' (looked for .png, .jpg, .bmp, .webp, ... recursively); "
        "put images there or point vaekit at another folder"
    )


def without_undecodable_names(files: list[Path], root: Path, skip_bad: bool) -> list[Path]:
    """``files`` whose names are text (UTF-8): ids are stored as text. A file name that is
    not is an error naming it, or (``skip_bad``) left out and reported."""
    bad = []
    for path in files:
        try:
            str(path.relative_to(root)).encode("utf-8")
        except UnicodeEncodeError:
            bad.append(path)
    if not bad:
        return files
    shown = os.fsencode(bad[0]).decode("utf-8", "backslashreplace")
    if not skip_bad:
        more = f" ({len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(
            f"file name '{shown}' is not valid UTF-8{more}; rename it, or pass --skip-bad "
            "to leave such files out"
        )
    report_skipped(
        [f"{os.fsencode(p).decode('utf-8', 'backslashreplace')}: name not UTF-8" for p in bad]
    )
    kept = set(bad)
    return [p for p in files if p not in kept]


def report_skipped(skipped: list[str]) -> None:
    """Tell the user (on stderr) how many unreadable images ``--skip-bad`` left out."""
    if not skipped:
        return
    from rich.console import Console

    Console(stderr=True).print(
        f"[yellow]skipped {len(skipped)} unreadable image(s)[/] (--skip-bad); first: {skipped[0]}",
        highlight=False,
        soft_wrap=True,
    )


def _folder_structure(rel: list[str]) -> tuple[np.ndarray | None, list[str | None] | None]:
    """Split ids (from split folders) and class folder names (``None`` for loose files)."""
    parts = [r.split("/") for r in rel]
    top = {p[0] for p in parts if len(p) > 1}
    split = None
    if (
        top
        and all(p[0].lower() in SPLIT_DIRS for p in parts if len(p) > 1)
        and all(len(p) > 1 for p in parts)
    ):
        split = np.array([SPLIT_DIRS[p[0].lower()] for p in parts], np.uint8)
        parts = [p[1:] for p in parts]
    classes = [p[0] if len(p) > 1 else None for p in parts]
    if all(c is None for c in classes):
        return split, None
    return split, classes


def _labels_csv(root: Path, labels: str | None) -> Path | None:
    if labels is None:
        default = root / LABELS_CSV
        return default if default.is_file() else None
    path = Path(labels)
    if not path.is_absolute() and not path.exists():
        path = root / path
    if not path.is_file():
        raise DataError(f"labels file '{labels}' not found; give a CSV path (filename,label)")
    return path


def read_labels_csv(
    path: Path, rel: list[str]
) -> tuple[np.ndarray | None, list[str] | None, np.ndarray | None, list[str] | None]:
    """Labels and/or attributes for the images ``rel`` (relative paths) from a labels CSV.

    Returns ``(labels, class_names, attributes, attribute_names)``. Images without
    a row get ``UNLABELLED``; a row naming an image that is not there is an error.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [row for row in csv.reader(fh) if row and any(cell.strip() for cell in row)]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise DataError(
            f"labels file '{path}' needs a header and rows: filename,label "
            "or filename,<attribute>,..."
        )
    header = [h.strip() for h in rows[0]]
    by_path = {r: i for i, r in enumerate(rel)}
    by_name: dict[str, int] = {}
    for i, r in enumerate(rel):
        name = r.rsplit("/", 1)[-1]
        by_name[name] = -1 if name in by_name else i  # -1: ambiguous bare name
    class_col = next((c for c in range(1, len(header)) if header[c].lower() in CLASS_COLUMNS), None)
    attr_cols = [c for c in range(1, len(header)) if c != class_col]

    labels = np.full(len(rel), UNLABELLED, dtype=np.int64) if class_col is not None else None
    attributes = np.zeros((len(rel), len(attr_cols)), dtype=bool) if attr_cols else None
    has_row = np.zeros(len(rel), dtype=bool)
    class_values: list[tuple[int, str]] = []
    unknown: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        name = row[0].strip().replace("\\", "/")
        i = by_path.get(name, by_name.get(name))
        if i is None or i < 0:
            unknown.append(name if i is None else f"{name} (ambiguous: give the relative path)")
            continue
        if len(row) != len(header):
            raise DataError(
                f"{path} line {line}: {len(row)} columns, header has {len(header)}; fix the row"
            )
        has_row[i] = True
        if class_col is not None:
            class_values.append((i, row[class_col].strip()))
        for a, c in enumerate(attr_cols):
            value = row[c].strip().lower()
            if value in TRUE:
                attributes[i, a] = True  # type: ignore[index]
            elif value not in FALSE:
                raise DataError(
                    f"{path} line {line}: attribute '{header[c]}' is '{row[c]}'; use 0 or 1"
                )
    if unknown:
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise DataError(
            f"labels file '{path}' names images that are not in the folder: '{unknown[0]}'{more}; "
            "fix the file names (relative to the folder) or remove those rows"
        )
    class_names = None
    if class_col is not None:
        class_names = _class_names([v for _, v in class_values])
        index = {n: k for k, n in enumerate(class_names)}
        for i, value in class_values:
            labels[i] = index[_class_key(value, class_names)]  # type: ignore[index]
    if attributes is not None and not has_row.all():
        missing = rel[int(np.flatnonzero(~has_row)[0])]
        raise DataError(
            f"labels file '{path}' has no row for {int((~has_row).sum())} image(s), e.g. "
            f"'{missing}'; add rows for them or move them out of the folder"
        )
    names = [header[c] for c in attr_cols] if attr_cols else None
    return labels, class_names, attributes, names


def _class_names(values: list[str]) -> list[str]:
    distinct = set(values)
    if distinct and all(v.lstrip("-").isdigit() for v in distinct):
        return [str(v) for v in sorted({int(v) for v in distinct})]
    return sorted(distinct)


def _class_key(value: str, class_names: list[str]) -> str:
    if value not in class_names and value.lstrip("-").isdigit():
        return str(int(value))  # "03" -> "3" when the names are numbers
    return value
