"""Image datasets: ImageNet-style class folders and ``path label`` list files. Decoded with Pillow per batch."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from convertmodel.data.datasets import Batch, Dataset, sample_digest
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import FormatError, InvalidModelError, ModelIOError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def load_image(path: str, pre: Preprocess) -> tuple[np.ndarray, bytes]:
    """Decode one image file with Pillow and apply the geometry; returns (uint8 HWC or HW, the file bytes)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ModelIOError(f"{path}: cannot read image: {e.strerror or e}") from e
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            return pre.decode(img), raw
    except UnidentifiedImageError as e:  # Pillow's message names an in-memory buffer, not the file
        raise FormatError(path, "cannot decode image: not an image format Pillow reads, or truncated") from e
    except OSError as e:
        raise FormatError(path, f"cannot decode image: {e}") from e


def read_class_names(path: str) -> list[str]:
    """A labels file: one class per line; the first token is the key (e.g. a WordNet id ``n01440764 tench``)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [ln.split()[0] for ln in f if ln.strip()]
    except OSError as e:
        raise ModelIOError(f"{path}: cannot read labels: {e.strerror or e}") from e


class _FileListDataset(Dataset):
    """Shared batching over a list of (image path, label or -1)."""

    def __init__(self, path: str, items: list[tuple[str, int]]) -> None:
        super().__init__(path)
        self.items = items
        if items and all(lab >= 0 for _, lab in items):
            self.kind = "classification"

    def __len__(self) -> int:
        return len(self.items)

    def sample_id(self, index: int) -> str:
        return self.items[index][0]

    def _raw_batches(self, batch_size: int, limit: int, pre: Preprocess, start: int = 0) -> Iterator[Batch]:
        for s in range(start, limit, batch_size):
            chunk = self.items[s : min(s + batch_size, limit)]
            arrays, digests = [], []
            for p, _ in chunk:
                arr, raw = load_image(p, pre)
                digests.append(sample_digest(raw))
                arrays.append(arr)
            shapes = {a.shape for a in arrays}
            if len(shapes) > 1:
                raise InvalidModelError(
                    f"{self.path}: images in one batch have different sizes {sorted(shapes)[:3]}; "
                    "pass --resize/--crop or a --preset so every image has the model's input size"
                )
            labels = np.array([lab for _, lab in chunk], dtype=np.int64)
            x = np.stack(arrays)
            yield Batch(
                pre.normalize(x[..., None] if x.ndim == 3 else x),
                labels if self.kind == "classification" else None,
                None,
                [p for p, _ in chunk],
                digests,
            )


class ImageFolderDataset(_FileListDataset):
    """``root/<class>/<image>``: classes are the subfolder names in sorted order (torchvision ImageFolder),
    or the order of ``labels`` (one class key per line, e.g. the synset list of a Caffe ImageNet model).
    A folder with images and no subfolders is an unlabelled set."""

    def __init__(self, root: str, labels: str | None = None) -> None:
        try:
            entries = sorted(os.listdir(root))
        except OSError as e:
            raise ModelIOError(f"{root}: cannot list: {e.strerror or e}") from e
        subdirs = [d for d in entries if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")]
        items: list[tuple[str, int]] = []
        if subdirs:
            names = read_class_names(labels) if labels else subdirs
            index = {n: i for i, n in enumerate(names)}
            unknown = [d for d in subdirs if d not in index]
            if unknown:
                raise FormatError(root, f"class folders {unknown[:3]} are not in the labels file {labels}")
            for d in subdirs:
                folder = os.path.join(root, d)
                for fn in sorted(os.listdir(folder)):
                    if fn.lower().endswith(IMAGE_EXTENSIONS):
                        items.append((os.path.join(folder, fn), index[d]))
            self.class_names = names
        else:
            items = [(os.path.join(root, fn), -1) for fn in entries if fn.lower().endswith(IMAGE_EXTENSIONS)]
        if not items:
            raise FormatError(root, f"no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")
        super().__init__(root, items)
        if not subdirs:
            self.kind = "unlabelled"


class ImageListDataset(_FileListDataset):
    """A text file of ``path label`` lines (``label`` optional; ``#`` comments). Relative paths resolve
    against ``root`` (default: the list file's folder). The path may contain spaces: the label is the last
    token when it is an integer."""

    def __init__(self, list_path: str, root: str | None = None) -> None:
        base = root or os.path.dirname(os.path.abspath(list_path))
        items: list[tuple[str, int]] = []
        try:
            with open(list_path, encoding="utf-8") as f:
                lines = f.readlines()
        except OSError as e:
            raise ModelIOError(f"{list_path}: cannot read: {e.strerror or e}") from e
        for k, ln in enumerate(lines, start=1):
            ln = ln.strip()
            if not ln or ln.startswith("#"):
                continue
            parts = ln.replace(",", " ").rsplit(None, 1)
            label = -1
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                p, label = parts[0], int(parts[1])
            else:
                p = ln
            if label < -1:
                raise FormatError(list_path, f"line {k}: negative label {label}")
            items.append((p if os.path.isabs(p) else os.path.join(base, p), label))
        if not items:
            raise FormatError(list_path, "no 'path label' lines found")
        labelled = [lab >= 0 for _, lab in items]
        if any(labelled) and not all(labelled):
            k = labelled.index(False) if labelled[0] else labelled.index(True)
            raise FormatError(list_path, f"some lines have a label and some do not (first mismatch: item {k + 1})")
        super().__init__(list_path, items)

    @classmethod
    def single(cls, image_path: str) -> _FileListDataset:
        """One image, unlabelled (``verify --data photo.jpg``)."""
        return _FileListDataset(image_path, [(image_path, -1)])
