"""The CelebA layout: an image folder, ``list_attr_celeba.txt`` and ``list_eval_partition.txt``.

``list_attr_celeba.txt`` is the original annotation file: a count line, a header
line of attribute names (40 in CelebA), then one row per image -- the file name
and one value per attribute, 1 or -1, separated by runs of spaces. The Kaggle
``.csv`` variants (``image_id,5_o_Clock_Shadow,...``) are read too.
``list_eval_partition.txt`` (``name 0|1|2``) gives the train/val/test split.

Where the files may sit under the given folder::

    list_attr_celeba.txt | Anno/list_attr_celeba.txt | list_attr_celeba.csv
    list_eval_partition.txt | Eval/list_eval_partition.txt | list_eval_partition.csv
    img_align_celeba/ | img_align_celeba/img_align_celeba/ | Img/img_align_celeba/ | the folder
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vaekit.dataset import ImageDataset
from vaekit.errors import DataError
from vaekit.imageio import is_image_file
from vaekit.sources.cache import decode_files
from vaekit.sources.folder import report_skipped

ATTR_FILES = ("list_attr_celeba.txt", "Anno/list_attr_celeba.txt", "list_attr_celeba.csv")
PARTITION_FILES = (
    "list_eval_partition.txt",
    "Eval/list_eval_partition.txt",
    "list_eval_partition.csv",
)
IMAGE_DIRS = ("img_align_celeba/img_align_celeba", "img_align_celeba", "Img/img_align_celeba", ".")


def find_first(root: Path, candidates: tuple[str, ...]) -> Path | None:
    """The first of ``candidates`` (relative to ``root``) that is a file."""
    for name in candidates:
        if (root / name).is_file():
            return root / name
    return None


def detect(path: Path) -> bool:
    """A folder with a CelebA attribute file."""
    return path.is_dir() and find_first(path, ATTR_FILES) is not None


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray, list[int]]:
    """Parse a CelebA attribute file into (file names, attribute names, bool (N, A), and
    the line number of each file's row)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        lines = [line.replace(",", " ") for line in text.splitlines()]
        header_at = 0
    else:
        lines = text.splitlines()
        header_at = 1
        if not lines or not lines[0].strip().isdigit():
            raise DataError(
                f"{path} line 1 should be the image count; is this a CelebA attribute file?"
            )
    if len(lines) <= header_at:
        raise DataError(f"{path} has no header line of attribute names")
    names = lines[header_at].split()
    if path.suffix.lower() == ".csv":
        names = names[1:]  # image_id
    if not names:
        raise DataError(f"{path} line {header_at + 1}: no attribute names found")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"{path} line {header_at + 1}: attribute '{repeated[0]}' is named twice; "
            "give each column its own name"
        )
    files: list[str] = []
    values: list[list[int]] = []
    numbers: list[int] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines[header_at + 1 :], start=header_at + 2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1:
            raise DataError(
                f"{path} line {number}: {len(fields) - 1} values for {len(names)} attributes; "
                "fix or remove the row"
            )
        bad = next((v for v in fields[1:] if v not in ("1", "-1")), None)
        if bad is not None:
            raise DataError(f"{path} line {number}: value '{bad}'; values must be 1 or -1")
        if fields[0] in first_line:
            raise DataError(
                f"{path} line {number}: '{fields[0]}' already has a row (line "
                f"{first_line[fields[0]]}); keep one row per image"
            )
        first_line[fields[0]] = number
        row = [int(v) for v in fields[1:]]
        files.append(fields[0])
        values.append(row)
        numbers.append(number)
    if not files:
        raise DataError(f"{path} lists no images; add rows 'name.jpg 1 -1 ...'")
    if header_at and int(lines[0].strip()) != len(files):
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(
            f"[yellow]warning:[/] {path} says {lines[0].strip()} images but lists {len(files)}",
            highlight=False,
        )
    return files, names, np.asarray(values, dtype=np.int8) > 0, numbers


def read_partition(path: Path) -> dict[str, int]:
    """``name -> 0|1|2`` (train/val/test) from ``list_eval_partition.txt`` or its CSV."""
    out: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields or (number == 1 and not fields[-1].isdigit()):
            continue  # blank line or CSV header
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(f"{path} line {number}: expected 'name 0|1|2', got '{line.strip()}'")
        out[fields[0]] = int(fields[1])
    return out


def load_celeba(
    root: Path,
    images: str | None = None,
    channels: int | None = None,
    image_size: int | None = None,
    skip_bad: bool = False,
) -> ImageDataset:
    """Read a CelebA-format folder; ``images`` overrides the image sub-folder."""
    root = Path(root)
    attr_path = find_first(root, ATTR_FILES)
    if attr_path is None:
        raise DataError(
            f"'{root}' has no list_attr_celeba.txt; see docs/datasets.md for the CelebA layout"
        )
    names_in_file, attribute_names, attributes, line_numbers = read_attributes(attr_path)
    image_dir = _image_dir(root, images, names_in_file[0])
    present = {e.name for e in os.scandir(image_dir) if e.is_file()}
    for number, name in zip(line_numbers, names_in_file, strict=True):
        if name not in present:
            raise DataError(
                f"{attr_path.name} line {number} names '{name}', which is not in '{image_dir}'; "
                "restore the image or remove its row"
            )
    files = [image_dir / name for name in names_in_file]
    split = None
    partition_path = find_first(root, PARTITION_FILES)
    if partition_path is not None:
        partition = read_partition(partition_path)
        missing = [n for n in names_in_file if n not in partition]
        if missing:
            raise DataError(
                f"{partition_path.name} has no split for {len(missing)} image(s), e.g. "
                f"'{missing[0]}'; add rows 'name 0|1|2' or remove the file"
            )
        split = np.array([partition[n] for n in names_in_file], dtype=np.uint8)

    decoded = decode_files(
        files, image_dir, "celeba", channels=channels, image_size=image_size, skip_bad=skip_bad
    )
    report_skipped(decoded.skipped)
    kept = decoded.kept
    return ImageDataset(
        images=decoded.images,
        ids=np.asarray(names_in_file, dtype=str)[kept],
        source="celeba",
        location=str(root),
        attributes=attributes[kept],
        attribute_names=list(attribute_names),
        split=None if split is None else split[kept],
        fingerprint=decoded.signature,
    )


def _image_dir(root: Path, images: str | None, first: str) -> Path:
    if images is not None:
        path = Path(images) if Path(images).is_absolute() else root / images
        if not path.is_dir():
            raise DataError(f"image folder '{path}' not found; check --dataset-opt images=...")
        return path
    for name in IMAGE_DIRS:
        candidate = root / name
        if (candidate / first).is_file():
            return candidate
    for name in IMAGE_DIRS:
        candidate = root / name
        if candidate.is_dir() and any(is_image_file(e.name) for e in os.scandir(candidate)):
            return candidate
    raise DataError(
        f"no CelebA images found under '{root}' (looked in img_align_celeba/ and the folder "
        "itself); put the images there or pass --dataset-opt images=FOLDER"
    )
