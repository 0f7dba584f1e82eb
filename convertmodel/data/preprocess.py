"""Image preprocessing for verify/predict: resize, centre crop, colour order, scale, mean/std, layout.

The order is fixed and documented so that a spec means one thing::

    decode (RGB or grey, uint8) -> resize -> centre crop -> channel order
    -> x * scale -> (x - mean) / std -> layout (NCHW or NHWC), float32

``mean`` and ``std`` are given per output channel, in the output channel order (for Caffe's
BGR models the mean is B, G, R). Caffe's ``transform_param`` computes ``(x - mean) * scale``;
express that as ``mean=..., std=1/scale``. The spec serializes to JSON and is stored in a
.q8's ``metadata["preprocessing"]`` so later commands reuse it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from convertmodel.errors import InvalidModelError

COLORS = ("rgb", "bgr", "gray")
LAYOUTS = ("NCHW", "NHWC")

#: ITU-R 601-2 luma, the weights Pillow's ``convert("L")`` uses (Pillow docs, Image.convert).
_LUMA = np.array([299 / 1000, 587 / 1000, 114 / 1000], dtype=np.float32)


@dataclass(frozen=True)
class Preprocess:
    """A preprocessing spec. ``resize``: an int resizes the shorter side (aspect kept), a pair is (H, W)."""

    resize: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    color: str = "rgb"
    scale: float = 1.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise InvalidModelError(f"preprocessing: color must be one of {', '.join(COLORS)}, got {self.color!r}")
        if self.layout not in LAYOUTS:
            raise InvalidModelError(f"preprocessing: layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        channels = 1 if self.color == "gray" else 3
        for name in ("mean", "std"):
            v = getattr(self, name)
            if v is not None:
                v = tuple(float(a) for a in (v if isinstance(v, (list, tuple)) else (v,)))
                if len(v) not in (1, channels):
                    raise InvalidModelError(
                        f"preprocessing: {name} needs 1 or {channels} values for color {self.color!r}, got {len(v)}"
                    )
                object.__setattr__(self, name, v)
        if self.std is not None and any(s == 0 for s in self.std):
            raise InvalidModelError("preprocessing: std must not contain 0")
        if isinstance(self.resize, (list, tuple)):
            object.__setattr__(self, "resize", (int(self.resize[0]), int(self.resize[1])))
        if self.crop is not None:
            c = self.crop
            object.__setattr__(self, "crop", (int(c), int(c)) if isinstance(c, int) else (int(c[0]), int(c[1])))

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    @property
    def needs_geometry(self) -> bool:
        return self.resize is not None or self.crop is not None

    # -- serialization ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("resize", "crop", "mean", "std"):
            if isinstance(d[k], tuple):
                d[k] = list(d[k])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocess:
        known = {"resize", "crop", "color", "scale", "mean", "std", "layout"}
        unknown = set(d) - known
        if unknown:
            raise InvalidModelError(f"preprocessing: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        kw = dict(d)
        for k in ("resize", "crop", "mean", "std"):
            if isinstance(kw.get(k), list):
                kw[k] = tuple(kw[k])
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> Preprocess:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidModelError(f"preprocessing: not valid JSON: {e}") from e
        if not isinstance(d, dict):
            raise InvalidModelError("preprocessing: expected a JSON object")
        return cls.from_dict(d)

    def with_(self, **changes: Any) -> Preprocess:
        return replace(self, **changes)

    # -- geometry (Pillow) ------------------------------------------------------------------
    def geometry(self, img: Any) -> Any:
        """Resize then centre-crop a PIL image (bilinear, as torchvision's default)."""
        from PIL import Image

        if self.resize is not None:
            w, h = img.size
            if isinstance(self.resize, int):
                # torchvision.transforms.Resize(int): the shorter side becomes `resize`, aspect kept.
                if w <= h:
                    nw, nh = self.resize, max(1, int(self.resize * h / w))
                else:
                    nw, nh = max(1, int(self.resize * w / h)), self.resize
            else:
                nh, nw = self.resize
            if (nw, nh) != (w, h):
                img = img.resize((nw, nh), Image.Resampling.BILINEAR)
        if self.crop is not None:
            ch, cw = self.crop
            w, h = img.size
            if ch > h or cw > w:
                raise InvalidModelError(f"preprocessing: crop {ch}x{cw} is larger than the image {h}x{w}")
            # Centre crop with rounding as torchvision's center_crop: top = round((h - ch) / 2).
            top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
            img = img.crop((left, top, left + cw, top + ch))
        return img

    def decode(self, img: Any) -> np.ndarray:
        """A PIL image -> geometry applied -> uint8 array (H, W, C) in RGB, or (H, W) grey."""
        mode = "L" if self.color == "gray" else "RGB"
        if img.mode != mode:
            img = img.convert(mode)
        return np.asarray(self.geometry(img), dtype=np.uint8)

    # -- the numeric part, vectorized over a batch ------------------------------------------
    def apply_array(self, batch: np.ndarray) -> np.ndarray:
        """uint8 images (N, H, W) grey or (N, H, W, C) RGB -> the model input, float32."""
        x = np.asarray(batch)
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
            raise InvalidModelError(f"preprocessing: expected images (N,H,W[,C]) with C in 1/3/4, got {list(x.shape)}")
        if self.needs_geometry:
            from PIL import Image

            imgs = [self.decode(Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im[..., :3])) for im in x]
            x = np.stack(imgs)
            if x.ndim == 3:
                x = x[..., None]
        return self.normalize(x)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) in RGB/grey -> colour order, scale, mean/std, layout; float32."""
        c = x.shape[-1]
        if c == 4:
            x, c = x[..., :3], 3
        if self.color == "gray" and c == 3:
            # Same weights as Pillow's convert("L"), computed in float (no rounding to uint8).
            xf = (x.astype(np.float32) @ _LUMA)[..., None]
        else:
            xf = x.astype(np.float32)
            if self.color != "gray" and c == 1:
                xf = np.repeat(xf, 3, axis=-1)
            if self.color == "bgr":
                xf = xf[..., ::-1]
        if self.scale != 1.0:
            xf = xf * np.float32(self.scale)
        if self.mean is not None:
            xf = xf - np.asarray(self.mean, dtype=np.float32)
        if self.std is not None:
            xf = np.divide(xf, np.asarray(self.std, dtype=np.float32), dtype=np.float32)
        if self.layout == "NCHW":
            xf = xf.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(xf, dtype=np.float32)


#: Named presets for common model families (sources in the comments).
PRESETS: dict[str, Preprocess] = {
    # torchvision ImageNet models: Resize(256), CenterCrop(224), ToTensor, Normalize(mean, std).
    "imagenet-torch": Preprocess(
        resize=256, crop=(224, 224), color="rgb", scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    ),
    # Keras/TF "inception" style: pixels scaled to [-1, 1].
    "imagenet-tf": Preprocess(
        resize=256, crop=(224, 224), color="rgb", scale=1 / 127.5, mean=(1.0, 1.0, 1.0), layout="NHWC"
    ),
    # Caffe VGG16/19 (the model zoo's deploy prototxt): BGR, per-channel mean, no scaling.
    "caffe-vgg": Preprocess(resize=256, crop=(224, 224), color="bgr", mean=(103.939, 116.779, 123.68)),
    # Caffe ResNet / CaffeNet style, same BGR mean convention at 224.
    "caffe-imagenet": Preprocess(resize=256, crop=(224, 224), color="bgr", mean=(104.0, 117.0, 123.0)),
    # OpenCV's res10 SSD face detector: blobFromImage(img, 1.0, (300, 300), (104, 177, 123)).
    "caffe-ssd-300": Preprocess(resize=(300, 300), color="bgr", mean=(104.0, 177.0, 123.0)),
    # Fashion-MNIST / MNIST nets trained by scripts/train_fmnist.py: grey, pixels / 255, NCHW.
    "fmnist": Preprocess(color="gray", scale=1 / 255),
    "mnist": Preprocess(color="gray", scale=1 / 255),
}


def preset(name: str) -> Preprocess:
    """A named preset; raises with the list of known names."""
    p = PRESETS.get(name)
    if p is None:
        raise InvalidModelError(f"unknown preprocessing preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return p


def parse_floats(text: str | None, what: str) -> tuple[float, ...] | None:
    """'0.485,0.456,0.406' -> (0.485, 0.456, 0.406)."""
    if text is None or text == "":
        return None
    try:
        return tuple(float(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError as e:
        raise InvalidModelError(f"{what}: expected comma-separated numbers, got {text!r}") from e


def parse_size(text: str | None, what: str) -> int | tuple[int, int] | None:
    """'256' -> 256 (shorter side); '300x300' or '300,300' -> (300, 300) as (H, W)."""
    if text is None or text == "":
        return None
    parts: Sequence[str] = text.lower().replace("x", ",").split(",")
    try:
        vals = [int(p) for p in parts if p]
    except ValueError as e:
        raise InvalidModelError(f"{what}: expected N or HxW, got {text!r}") from e
    if len(vals) == 1:
        return vals[0]
    if len(vals) == 2:
        return (vals[0], vals[1])
    raise InvalidModelError(f"{what}: expected N or HxW, got {text!r}")
