"""Built-in plugin: dataset sources.

``digits`` is scikit-learn's bundled 8x8 digits, the embedded default: real,
offline, instant. ``celeba``, ``idx``, ``arrays`` and ``folder`` read data from a
path; the readers live in :mod:`vaekit.sources`. Detection tries the most
specific kind first (higher ``detect_priority``): celeba, idx, arrays, folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from vaekit import hookimpl

# Options vaekit itself fills in from `train`'s flags (and from --split), declared with the
# help `vaekit plugins show` prints.
Channels = Annotated[int | None, "convert to 1 or 3 channels while decoding (from --channels)"]
ImageSize = Annotated[
    int | None, "resize and centre-crop to this square size while decoding (from --image-size)"
]
SkipBad = Annotated[bool, "leave out unreadable images and count them (from --skip-bad)"]

if TYPE_CHECKING:  # numpy and vaekit.data load on first use: ``vaekit --help`` needs neither
    from vaekit.data import ImageDataset


class DigitsSource:
    """scikit-learn's 1,797 8x8 grayscale digits with class names "0" ... "9"."""

    detect_priority = -100

    @staticmethod
    def detect(path: Path) -> bool:
        return False  # only chosen by name, or when no path is given

    @staticmethod
    def load(path: Path | None) -> ImageDataset:
        import numpy as np
        from sklearn.datasets import load_digits

        from vaekit.data import ImageDataset

        bunch = load_digits()
        images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
        return ImageDataset(
            images=images,
            ids=np.array([str(i) for i in range(len(images))]),
            source="digits",
            location="embedded",
            labels=bunch.target.astype(np.int64),
            class_names=[str(i) for i in range(10)],
        )


class CelebASource:
    """The CelebA layout: images + list_attr_celeba.txt (+ list_eval_partition.txt)."""

    detect_priority = 30

    @staticmethod
    def detect(path: Path) -> bool:
        from vaekit.sources.celeba import detect

        return detect(path)

    @staticmethod
    def load(
        path: Path,
        images: Annotated[
            str | None, "the folder of image files (default: found beside the text files)"
        ] = None,
        channels: Channels = None,
        image_size: ImageSize = None,
        skip_bad: SkipBad = False,
    ) -> ImageDataset:
        from vaekit.sources.celeba import load_celeba

        return load_celeba(
            path, images=images, channels=channels, image_size=image_size, skip_bad=skip_bad
        )


class IdxSource:
    """MNIST-style IDX files (train + t10k, gzipped or not); Fashion-MNIST class names."""

    detect_priority = 20

    @staticmethod
    def detect(path: Path) -> bool:
        from vaekit.sources.idx import detect

        return detect(path)

    @staticmethod
    def load(
        path: Path,
        class_names: Annotated[
            list[str] | None, "names of the class ids (default: Fashion-MNIST's or MNIST's)"
        ] = None,
        splits: Annotated[
            tuple[str, ...] | None,
            "read only these of its own splits, train and/or test (vaekit asks for what "
            "--split needs; default: both)",
        ] = None,
    ) -> ImageDataset:
        from vaekit.sources.idx import load_idx

        return load_idx(path, class_names=class_names, splits=splits)


class ArraysSource:
    """Images (and labels, attributes, splits) in a .npz, .npy or HDF5 file."""

    detect_priority = 10

    @staticmethod
    def detect(path: Path) -> bool:
        from vaekit.sources.arrays import detect

        return detect(path)

    @staticmethod
    def load(
        path: Path,
        layout: Annotated[
            Literal["nchw", "nhwc"] | None, "the arrays' axis order when the shape is ambiguous"
        ] = None,
        splits: Annotated[
            tuple[str, ...] | None,
            "with x_train/x_test arrays, read only the images of these, train and/or test "
            "(vaekit asks for what --split needs; default: both)",
        ] = None,
    ) -> ImageDataset:
        from vaekit.sources.arrays import load_arrays

        return load_arrays(path, layout=layout, splits=splits)


class FolderSource:
    """A folder of images (recursive); sub-folders are classes; optional labels CSV."""

    detect_priority = 0

    @staticmethod
    def detect(path: Path) -> bool:
        from vaekit.sources.folder import has_images

        return path.is_dir() and has_images(path)

    @staticmethod
    def load(
        path: Path,
        labels: Annotated[
            str | None, "a CSV of labels or attributes per image (default: labels.csv if any)"
        ] = None,
        channels: Channels = None,
        image_size: ImageSize = None,
        skip_bad: SkipBad = False,
    ) -> ImageDataset:
        from vaekit.sources.folder import load_folder

        return load_folder(
            path, labels=labels, channels=channels, image_size=image_size, skip_bad=skip_bad
        )


@hookimpl
def register_datasets(register):
    """Register the built-in dataset sources."""
    register("digits", DigitsSource)
    register("celeba", CelebASource)
    register("idx", IdxSource)
    register("arrays", ArraysSource)
    register("folder", FolderSource)
