"""Image datasets: ImageNet-style class folders and ``path label`` list files. Decoded with Pillow per batch."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from convertmodel.data.datasets import Batch, Dataset, sample_digest
from convertmodel.data.preprocess import Preprocess
from convertmodel.errors import DataError, FormatError, ModelIOError
from convertmodel.fsutil import open_regular

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


#: Environment variable overriding the pixel cap of decoded images (width x height).
MAX_PIXELS_ENV = "CONVERTMODEL_MAX_IMAGE_PIXELS"
#: Default pixel cap: Pillow's own warning threshold (~179 MP, 0.5 GiB as RGB), enforced as an error.
DEFAULT_MAX_PIXELS = 178_956_970


def max_image_pixels() -> int:
    env = os.environ.get(MAX_PIXELS_ENV)
    if env:
        try:
            return int(env)
        except ValueError:
            raise FormatError(MAX_PIXELS_ENV, f"expected a pixel count, got {env!r}") from None
    return DEFAULT_MAX_PIXELS


def load_image(path: str, pre: Preprocess) -> tuple[np.ndarray, bytes]:
    """Decode one image file with Pillow and apply the geometry; returns (uint8 HWC or HW, the file bytes).

    The size in the image header is checked against the pixel cap before any pixel is decoded, so a
    small file that claims 60000x60000 pixels (a decompression bomb) is refused, not allocated."""
    import io

    from PIL import Image

    try:
        with open_regular(path, "an image file") as f:
            raw = f.read()
    except OSError as e:
        raise ModelIOError(f"{path}: cannot read image: {e.strerror or e}") from e
    cap = max_image_pixels()
    try:
        with Image.open(io.BytesIO(raw)) as img:
            w, h = img.size
            if w * h > cap:
                raise FormatError(
                    path, f"image of {w}x{h} pixels exceeds the cap of {cap} pixels (set {MAX_PIXELS_ENV} to allow it)"
                )
            img.load()
            return pre.decode(img), raw
    except FormatError:
        raise
    except Image.DecompressionBombError as e:
        raise FormatError(path, f"image exceeds the cap of {cap} pixels (set {MAX_PIXELS_ENV} to allow it): {e}") from e
    except MemoryError as e:
        raise FormatError(path, "image too large to decode") from e
    except Image.UnidentifiedImageError as e:  # its message names an in-memory buffer's address, not the file
        raise FormatError(path, "cannot decode image: not an image format Pillow reads, or truncated") from e
    except Exception as e:  # Pillow's decoders raise OSError, SyntaxError, ValueError, struct.error, EOFError ...
        raise FormatError(path, f"cannot decode image: {type(e).__name__}: {e}") from e


def read_class_names(path: str) -> list[str]:
    """A labels file: one class per line; the first token is the key (e.g. a WordNet id ``n01440764 tench``)."""
    try:
        with open_regular(path, "a labels file") as f:
            text = f.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"labels file is not UTF-8 text: {e}") from e
    except OSError as e:
        raise ModelIOError(f"{path}: cannot read labels: {e.strerror or e}") from e
    return [ln.split()[0] for ln in text.splitlines() if ln.strip()]


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
                raise DataError(
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
            with open_regular(list_path, "an image list file") as f:
                lines = f.read().decode("utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise FormatError(list_path, f"image list is not UTF-8 text: {e}") from e
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
