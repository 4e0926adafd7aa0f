"""On-device, batched, per-sample augmentation of image batches (no PIL, no per-sample Python).

A batch is a float tensor (N, C, H, W) with values in [0, 1], on any device. Every random op
takes an explicit CPU `torch.Generator` and draws its per-sample parameters there (N small
numbers), then moves them to the batch's device. One seed therefore gives the same crops,
flips and factors on CPU and GPU whatever the device RNG did, and a resumed run that restores
the generator state continues identically. Each op is a pure function returning a new tensor
of the input's dtype and device, next to a frozen dataclass holding its settings.

An op's settings are checked in one place, its config dataclass's __post_init__ (whose
messages name the setting): `Augment.from_config` builds the configs once and then runs each
op's kernel on them batch after batch without checking again, and a public op function
(`random_crop(x, ...)`) builds the config and runs the same kernel. Helpers such as
`resized_crop` and `random_resized_crop_boxes` take settings a config has checked.
Normalisation is not an op: the input pipeline normalises with `train.normalize`, in
training and evaluation alike.

Semantics follow torchvision.transforms.v2 (RandomCrop, RandomHorizontalFlip,
RandomResizedCrop, ColorJitter, RandomGrayscale, GaussianBlur and their functional kernels)
and timm.data.Mixup in batch mode (mixup / cutmix pair each sample with the flipped batch,
one lambda per batch, cutmix's lambda corrected to the box that fits; `mix_batch` is what the
engine calls with train.mixup_alpha / cutmix_alpha). Differences:
- torchvision draws one set of parameters per call, i.e. per image in a DataLoader; here
  every sample of the batch gets its own draw, as the per-image pipeline would. The
  distributions are the same; the random streams are not, so the same seed does not
  reproduce torchvision's images.
- ColorJitter: brightness, contrast, saturation, hue always run in that fixed order;
  torchvision draws a random permutation of the four per call.
- RandomResizedCrop resizes with plain bilinear interpolation (grid_sample); torchvision v2
  antialiases when downscaling (antialias=True), so downscaled crops are slightly sharper.
  Equal to `resized_crop(..., antialias=False)` within float error.
- gaussian_blur takes a per-sample sigma and leaves a sample with sigma <= 0 unchanged
  (torchvision rejects sigma <= 0); kernel_size is one odd int (square kernels only).
- Grayscale uses torchvision's weights (0.2989, 0.587, 0.114), its rounding of ITU-R 601-2's
  0.299, so results match torchvision to float error.
- RandomCrop has no pad_if_needed; a crop larger than the padded image is an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..config import ConfigError, config_from_dict

LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights (ITU-R 601-2, 0.299 rounded)
PADDING_MODES = ("constant", "edge", "reflect", "symmetric")  # torchvision's names
RESIZED_CROP_TRIES = 10  # torchvision RandomResizedCrop.get_params

__all__ = [
    "Augment",
    "OPS",
    "REMOVED_OPS",
    "LUMA",
    "PADDING_MODES",
    "RandomCropConfig",
    "HorizontalFlipConfig",
    "RandomResizedCropConfig",
    "ColorJitterConfig",
    "RandomGrayscaleConfig",
    "GaussianBlurConfig",
    "MixupConfig",
    "CutMixConfig",
    "MixConfig",
    "random_crop",
    "horizontal_flip",
    "random_resized_crop",
    "random_resized_crop_boxes",
    "resized_crop",
    "color_jitter",
    "adjust_color",
    "rgb_to_hsv",
    "hsv_to_rgb",
    "rgb_to_grayscale",
    "random_grayscale",
    "gaussian_blur",
    "mixup",
    "cutmix",
    "cutmix_box",
    "mix_batch",
    "smoothed_one_hot",
]


# --- checks (called by the config dataclasses) and conversions (called by the kernels) ----


def _check_batch(x: torch.Tensor) -> None:
    if x.dim() != 4 or not x.is_floating_point():
        raise TypeError(f"expected a float (N, C, H, W) batch, got {x.dtype} of shape {tuple(x.shape)}")


def _check_prob(name: str, p: float) -> None:
    if not 0 <= p <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {p}")


def _as_pair(value: int | Sequence[int]) -> tuple[int, ...]:
    """torchvision's `size`: an int or an (h, w) pair."""
    return (value, value) if isinstance(value, int) else tuple(value)


def _check_pair(name: str, value: int | Sequence[int]) -> None:
    pair = _as_pair(value)
    if len(pair) != 2 or any(not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or an (h, w) pair of them, got {value!r}")


def _as_padding4(value: int | Sequence[int]) -> tuple[int, ...]:
    """torchvision's padding: int (all sides), (left/right, top/bottom) or (left, top, right, bottom)."""
    pads = (value,) if isinstance(value, int) else tuple(value)
    if len(pads) == 1:
        return pads * 4
    if len(pads) == 2:
        return pads[0], pads[1], pads[0], pads[1]
    return pads


def _check_padding(value: int | Sequence[int]) -> None:
    pads = (value,) if isinstance(value, int) else tuple(value)
    if len(pads) not in (1, 2, 4) or any(not isinstance(v, int) or v < 0 for v in pads):
        raise ValueError(f"padding must be an int >= 0 or a sequence of 2 or 4 of them, got {value!r}")


def _check_range(name: str, value: Sequence[float], positive: bool = False) -> None:
    if isinstance(value, (int, float, str)) or len(value) != 2:
        raise ValueError(f"{name} must be a (min, max) pair, got {value!r}")
    lo, hi = (float(v) for v in value)
    if not (lo > 0 if positive else lo >= 0) or lo > hi:
        bound = "0 <" if positive else "0 <="
        raise ValueError(f"{name} must be a pair with {bound} {name}[0] <= {name}[1], got {tuple(value)}")


def _jitter_range(value: float | Sequence[float], center: float, lowest: float) -> tuple[float, float]:
    """torchvision ColorJitter._check_input: v -> [max(lowest, c - v), c + v], or a given (min, max)."""
    if isinstance(value, (int, float)):
        return max(center - value, lowest), center + value
    lo, hi = value
    return float(lo), float(hi)


def _check_jitter(name: str, value: float | Sequence[float], center: float, bound: tuple[float, float]) -> None:
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    elif not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}")
    lo, hi = _jitter_range(value, center, bound[0])
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"{name} must give a range inside {list(bound)}, got {[lo, hi]}")


def _check_sigma(sigma: Any) -> None:
    if isinstance(sigma, (int, float)):
        return
    if isinstance(sigma, tuple):
        _check_range("sigma", sigma, positive=True)
        return
    raise ValueError(f"sigma must be a float or a (min, max) pair, got {sigma!r}")


def _check_kernel_size(kernel_size: int) -> None:
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd int >= 1, got {kernel_size!r}")


def _as_tuple(obj: Any, name: str) -> None:
    """YAML gives lists; frozen configs keep tuples so they stay hashable and comparable."""
    value = getattr(obj, name)
    if isinstance(value, list):
        object.__setattr__(obj, name, tuple(value))


def _on(t: torch.Tensor, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Move CPU-drawn parameters to x's device without stalling the GPU: a copy from ordinary
    (pageable) host memory waits for all queued GPU work, a copy from pinned memory does not."""
    if x.device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory().to(x.device, non_blocking=True)
    return t.to(x.device, dtype) if dtype is not None else t.to(x.device)


def _per_sample(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def _chance(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """(N,) bool on the CPU: sample k is picked with probability p (torchvision: rand(1) < p)."""
    return torch.rand(n, generator=generator) < p


# --- random crop ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomCropConfig:
    size: int | tuple[int, int] = 32  # CIFAR recipe: RandomCrop(32, padding=4)
    padding: int | tuple[int, ...] = 4
    padding_mode: str = "constant"  # torchvision: constant | edge | reflect | symmetric
    fill: float = 0.0  # constant mode only; torchvision default 0

    def __post_init__(self):
        _as_tuple(self, "size")
        _as_tuple(self, "padding")
        _check_pair("size", self.size)
        _check_padding(self.padding)
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {self.padding_mode!r}")


def _source_index(idx: torch.Tensor, length: int, mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Map indices into the padded image to indices into the original (and a validity mask
    for constant padding), so the padded image is never materialised."""
    if mode == "constant":
        valid = (idx >= 0) & (idx < length)
        return idx.clamp(0, length - 1), valid
    if mode == "edge":
        return idx.clamp(0, length - 1), None
    if mode == "reflect":  # mirror about the edge pixel: -1 -> 1
        if length == 1:
            return torch.zeros_like(idx), None
        period = 2 * (length - 1)
        m = idx.remainder(period)
        return torch.where(m < length, m, period - m), None
    period = 2 * length  # symmetric: mirror repeating the edge pixel, -1 -> 0
    m = idx.remainder(period)
    return torch.where(m < length, m, period - 1 - m), None


def random_crop(
    x: torch.Tensor,
    size: int | tuple[int, int],
    padding: int | Sequence[int],
    generator: torch.Generator,
    padding_mode: str = "constant",
    fill: float = 0.0,
) -> torch.Tensor:
    """Pad, then crop a (size) window at a uniformly random offset per sample (RandomCrop)."""
    return _random_crop(x, RandomCropConfig(size, padding, padding_mode, fill), generator)


def _random_crop(x: torch.Tensor, cfg: RandomCropConfig, generator: torch.Generator) -> torch.Tensor:
    _check_batch(x)
    n, c, h, w = x.shape
    th, tw = _as_pair(cfg.size)
    left, top, right, bottom = _as_padding4(cfg.padding)
    ph, pw = h + top + bottom, w + left + right
    if ph < th or pw < tw:
        raise ValueError(f"crop size {(th, tw)} is larger than the padded image {(ph, pw)}")
    i = torch.randint(0, ph - th + 1, (n,), generator=generator)
    j = torch.randint(0, pw - tw + 1, (n,), generator=generator)
    rows, row_ok = _source_index(i[:, None] + torch.arange(th) - top, h, cfg.padding_mode)
    cols, col_ok = _source_index(j[:, None] + torch.arange(tw) - left, w, cfg.padding_mode)
    rows, cols = _on(rows, x), _on(cols, x)
    # Two gathers (rows, then columns) instead of advanced indexing: contiguous output, no permute.
    out = x.gather(2, rows.view(n, 1, th, 1).expand(n, c, th, w))
    out = out.gather(3, cols.view(n, 1, 1, tw).expand(n, c, th, tw))
    if row_ok is not None:
        inside = _on((row_ok[:, :, None] & col_ok[:, None, :]).view(n, 1, th, tw), x)
        out = torch.where(inside, out, torch.full((), cfg.fill, dtype=x.dtype, device=x.device))
    return out


# --- horizontal flip -----------------------------------------------------------------------


@dataclass(frozen=True)
class HorizontalFlipConfig:
    p: float = 0.5  # torchvision RandomHorizontalFlip default

    def __post_init__(self):
        _check_prob("p", self.p)


def horizontal_flip(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Mirror each sample left-right with probability p."""
    return _horizontal_flip(x, HorizontalFlipConfig(p), generator)


def _horizontal_flip(x: torch.Tensor, cfg: HorizontalFlipConfig, generator: torch.Generator) -> torch.Tensor:
    _check_batch(x)
    flip = _on(_chance(len(x), cfg.p, generator), x)
    return torch.where(_per_sample(flip), x.flip(-1), x)


# --- random resized crop -------------------------------------------------------------------


@dataclass(frozen=True)
class RandomResizedCropConfig:
    size: int | tuple[int, int] = 224  # ImageNet recipe
    scale: tuple[float, float] = (0.08, 1.0)  # torchvision default
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # torchvision default

    def __post_init__(self):
        for name in ("size", "scale", "ratio"):
            _as_tuple(self, name)
        _check_pair("size", self.size)
        _check_range("scale", self.scale)
        _check_range("ratio", self.ratio, positive=True)


def random_resized_crop_boxes(
    n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator
) -> torch.Tensor:
    """(N, 4) int64 boxes (top, left, h, w) by RandomResizedCrop.get_params' rule, for N samples;
    `scale` and `ratio` as RandomResizedCropConfig checks them.

    torchvision tries up to 10 (area, log-aspect) draws and keeps the first box that fits,
    else falls back to a centre crop clamped to the ratio range. Here all 10 candidates are
    drawn for every sample at once and the first that fits is taken, which has the same
    distribution without a loop.
    """
    scale, ratio = tuple(float(v) for v in scale), tuple(float(v) for v in ratio)
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))  # float32, as torchvision
    frac = torch.empty(n, RESIZED_CROP_TRIES).uniform_(scale[0], scale[1], generator=generator)
    log_aspect = torch.empty(n, RESIZED_CROP_TRIES).uniform_(
        log_ratio[0].item(), log_ratio[1].item(), generator=generator
    )
    # torchvision takes .item() of the float32 draws and does the rest in Python floats.
    target_area = area * frac.double()
    aspect = torch.exp(log_aspect).double()
    cw = torch.round(torch.sqrt(target_area * aspect)).long()  # half-to-even, like Python's round
    ch = torch.round(torch.sqrt(target_area / aspect)).long()
    fits = (cw > 0) & (cw <= width) & (ch > 0) & (ch <= height)
    found = fits.any(1)
    first = (~fits).long().cumprod(1).sum(1).clamp(max=RESIZED_CROP_TRIES - 1)[:, None]
    bw, bh = cw.gather(1, first)[:, 0], ch.gather(1, first)[:, 0]

    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    bw = torch.where(found, bw, torch.full_like(bw, fw))
    bh = torch.where(found, bh, torch.full_like(bh, fh))
    # torch.randint has no per-sample upper bound; floor(u * k) is uniform on {0..k-1} too.
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    top = torch.minimum(torch.floor(u[:, 0] * (height - bh + 1)).long(), height - bh)
    left = torch.minimum(torch.floor(u[:, 1] * (width - bw + 1)).long(), width - bw)
    top = torch.where(found, top, (height - bh) // 2)
    left = torch.where(found, left, (width - bw) // 2)
    return torch.stack((top, left, bh, bw), 1)


def _resize_coords(start: torch.Tensor, extent: torch.Tensor, out: int, full: int) -> torch.Tensor:
    """Normalised grid coordinates (align_corners=False) of `out` samples across each box.

    Pixel centres map as in F.interpolate(bilinear, align_corners=False); clamping to the box's
    edge pixels reproduces crop-then-resize exactly, where a plain affine grid would blend in
    the pixels just outside the box.
    """
    start, extent = start.double()[:, None], extent.double()[:, None]
    src = start + (torch.arange(out, dtype=torch.float64) + 0.5) * extent / out - 0.5
    src = torch.minimum(torch.maximum(src, start), start + extent - 1)
    return (2 * src + 1) / full - 1


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Crop each sample to its box (top, left, h, w) and resize bilinearly to `size` (an int
    or an (h, w) pair of positive ints), all samples in one grid_sample call. Equals
    torchvision's resized_crop with antialias=False."""
    _check_batch(x)
    n, _, h, w = x.shape
    out_h, out_w = _as_pair(size)
    boxes = boxes.to("cpu", torch.long)
    # Grids are built on the CPU in float64, so CPU and GPU sample the same points.
    ys = _on(_resize_coords(boxes[:, 0], boxes[:, 2], out_h, h), x, x.dtype)
    xs = _on(_resize_coords(boxes[:, 1], boxes[:, 3], out_w, w), x, x.dtype)
    grid = torch.stack((xs[:, None, :].expand(n, out_h, out_w), ys[:, :, None].expand(n, out_h, out_w)), -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop(
    x: torch.Tensor,
    size: int | tuple[int, int],
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    *,
    generator: torch.Generator,
) -> torch.Tensor:
    """RandomResizedCrop per sample: a random box by torchvision's rule, resized to `size`."""
    return _random_resized_crop(x, RandomResizedCropConfig(size, scale, ratio), generator)


def _random_resized_crop(x: torch.Tensor, cfg: RandomResizedCropConfig, generator: torch.Generator) -> torch.Tensor:
    _check_batch(x)
    boxes = random_resized_crop_boxes(len(x), x.shape[2], x.shape[3], cfg.scale, cfg.ratio, generator)
    return resized_crop(x, boxes, cfg.size)


# --- colour ---------------------------------------------------------------------------------


def rgb_to_grayscale(x: torch.Tensor, num_output_channels: int = 1) -> torch.Tensor:
    """torchvision's luma (same weights and operation order), 1 or 3 output channels."""
    if x.shape[-3] == 1:
        gray = x
    else:
        r, g, b = x.unbind(-3)
        gray = r.mul(LUMA[0]).add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2]).unsqueeze(-3)
    return gray.expand(*x.shape[:-3], num_output_channels, *x.shape[-2:]).clone()


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> HSV with every channel in [0, 1], over dim -3 of any batch."""
    r, g, b = x.unbind(-3)
    maxc, minc = x.amax(-3), x.amin(-3)
    delta = maxc - minc
    gray = delta == 0
    # Where the pixel is grey, hue and saturation are 0; dividing by 1 there avoids NaN.
    ones = torch.ones_like(delta)
    sat = delta / torch.where(gray, ones, maxc)
    d = torch.where(gray, ones, delta)
    hue = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, 2.0 + (b - r) / d, 4.0 + (r - g) / d))
    hue = torch.where(gray, torch.zeros_like(hue), hue).div(6.0).remainder(1.0)
    return torch.stack((hue, sat, maxc), -3)


# For each hue sector 0..5, which of (v, p, q, t) is red, green and blue.
_SECTOR_RGB = torch.tensor([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_hsv (hue wraps at 1)."""
    h, s, v = x.unbind(-3)
    h6 = h * 6.0
    sector = torch.floor(h6)
    f = h6 - sector
    sector = sector.long().remainder(6)
    p = (v * (1.0 - s)).clamp(0, 1)
    q = (v * (1.0 - s * f)).clamp(0, 1)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0, 1)
    vpqt = torch.stack((v, p, q, t), -3)
    pick = _on(_SECTOR_RGB, x)[sector].movedim(-1, -3)  # (..., 3, H, W)
    return vpqt.gather(-3, pick)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's _blend with a per-sample ratio: ratio * a + (1 - ratio) * b, clamped."""
    return (a * ratio + b * (1.0 - ratio)).clamp(0, 1)


def adjust_color(
    x: torch.Tensor,
    brightness: torch.Tensor | None = None,
    contrast: torch.Tensor | None = None,
    saturation: torch.Tensor | None = None,
    hue: torch.Tensor | None = None,
) -> torch.Tensor:
    """torchvision's adjust_brightness, _contrast, _saturation, _hue in that order, each with
    a per-sample (N,) factor (None skips it). Saturation and hue are no-ops for C == 1."""
    _check_batch(x)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"colour ops need 1 or 3 channels, got {x.shape[1]}")
    rgb = x.shape[1] == 3

    def factor(v: torch.Tensor) -> torch.Tensor:
        return _per_sample(_on(v, x, x.dtype))

    out = x
    if brightness is not None:
        out = (out * factor(brightness)).clamp(0, 1)
    if contrast is not None:
        # torchvision's contrast pivot: the mean of the sample's grayscale image.
        mean = rgb_to_grayscale(out).mean(dim=(-3, -2, -1), keepdim=True)
        out = _blend(out, mean, factor(contrast))
    if saturation is not None and rgb:
        out = _blend(out, rgb_to_grayscale(out), factor(saturation))
    if hue is not None and rgb:
        shift = _on(hue, x, x.dtype)
        work = out.float() if out.dtype in (torch.float16, torch.bfloat16) else out
        hsv = rgb_to_hsv(work)
        h = (hsv[:, 0] + shift.to(work.dtype).view(-1, 1, 1)).remainder(1.0)
        shifted = hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), 1)).to(x.dtype)
        # torchvision returns the image untouched for a zero shift; the HSV round trip is not exact.
        out = torch.where(_per_sample(shift != 0), shifted, out)
    return out.clone() if out is x else out


# ColorJitter's adjustments in the order they run: (factor of no change, range of factors).
JITTER_RANGES = {
    "brightness": (1.0, (0.0, math.inf)),
    "contrast": (1.0, (0.0, math.inf)),
    "saturation": (1.0, (0.0, math.inf)),
    "hue": (0.0, (-0.5, 0.5)),
}


@dataclass(frozen=True)
class ColorJitterConfig:
    brightness: float | tuple[float, float] = 0.4  # SimCLR CIFAR (strength s=0.5): 0.8 s ...
    contrast: float | tuple[float, float] = 0.4  # ... 0.8 s
    saturation: float | tuple[float, float] = 0.4  # ... 0.8 s
    hue: float | tuple[float, float] = 0.1  # ... 0.2 s
    p: float = 0.8  # SimCLR: RandomApply(ColorJitter, p=0.8)

    def __post_init__(self):
        for name in ("brightness", "contrast", "saturation", "hue"):
            _as_tuple(self, name)
        for name, (center, bound) in JITTER_RANGES.items():
            _check_jitter(name, getattr(self, name), center, bound)
        _check_prob("p", self.p)


def color_jitter(
    x: torch.Tensor,
    brightness: float | tuple[float, float],
    contrast: float | tuple[float, float],
    saturation: float | tuple[float, float],
    hue: float | tuple[float, float],
    p: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """ColorJitter with per-sample factors, applied to each sample with probability p.

    Factors are uniform in [max(0, 1 - v), 1 + v] (hue: shift in [-h, h]) or in a given
    (min, max), as torchvision. Unlike torchvision, which shuffles the four adjustments per
    call, they always run in the order brightness, contrast, saturation, hue.
    """
    return _color_jitter(x, ColorJitterConfig(brightness, contrast, saturation, hue, p), generator)


def _color_jitter(x: torch.Tensor, cfg: ColorJitterConfig, generator: torch.Generator) -> torch.Tensor:
    n = len(x)
    apply = _chance(n, cfg.p, generator)
    factors = []
    for name, (center, bound) in JITTER_RANGES.items():
        lo, hi = _jitter_range(getattr(cfg, name), center, bound[0])
        identity = lo == hi == center  # this adjustment is a no-op: draw nothing for it
        factors.append(None if identity else torch.empty(n).uniform_(lo, hi, generator=generator))
    out = adjust_color(x, *factors)
    return torch.where(_per_sample(_on(apply, x)), out, x)


# --- grayscale ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomGrayscaleConfig:
    p: float = 0.1  # torchvision RandomGrayscale default (SimCLR uses 0.2)

    def __post_init__(self):
        _check_prob("p", self.p)


def random_grayscale(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each sample by its luma, replicated to all C channels, with probability p."""
    return _random_grayscale(x, RandomGrayscaleConfig(p), generator)


def _random_grayscale(x: torch.Tensor, cfg: RandomGrayscaleConfig, generator: torch.Generator) -> torch.Tensor:
    _check_batch(x)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"random_grayscale needs 1 or 3 channels, got {x.shape[1]}")
    apply = _on(_chance(len(x), cfg.p, generator), x)
    return torch.where(_per_sample(apply), rgb_to_grayscale(x, x.shape[1]), x)


# --- gaussian blur --------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianBlurConfig:
    sigma: float | tuple[float, float] = (0.1, 2.0)  # torchvision GaussianBlur default range
    kernel_size: int = 23  # SimCLR: 10 % of a 224 image, made odd
    p: float | None = None  # None: blur every sample (torchvision); SimCLR ImageNet uses 0.5

    def __post_init__(self):
        _as_tuple(self, "sigma")
        _check_sigma(self.sigma)
        _check_kernel_size(self.kernel_size)
        if self.p is not None:
            _check_prob("p", self.p)


def _gaussian_kernels(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(N, k) normalised 1-D kernels in float64; torchvision's softmax(-(t/sqrt(2)/s)^2) is
    the same Gaussian exp(-t^2 / (2 s^2)) normalised."""
    t = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    kernel = torch.exp(-0.5 * (t[None, :] / sigma[:, None]) ** 2)
    return kernel / kernel.sum(1, keepdim=True)


def gaussian_blur(
    x: torch.Tensor,
    sigma: float | tuple[float, float] | torch.Tensor,
    kernel_size: int,
    p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian blur with a per-sample sigma, separable, reflect-padded as torchvision's.

    `sigma` is one float, a (min, max) range drawn uniformly per sample (torchvision
    GaussianBlur), or an (N,) tensor (the blur curriculum's per-sample sigma; moved to the
    CPU). A sample with sigma <= 0 comes back exactly unchanged. With `p`, only a random
    subset of samples is blurred. A range or `p` needs `generator`.
    """
    if not isinstance(sigma, torch.Tensor):
        return _gaussian_blur(x, GaussianBlurConfig(sigma, kernel_size, p), generator)
    GaussianBlurConfig(0.0, kernel_size, p)  # the config's checks of kernel_size and p; sigma is per sample
    sig = sigma.detach().to("cpu", torch.float64).flatten()
    if sig.numel() == 1:
        sig = sig.expand(len(x))
    if sig.numel() != len(x):
        raise ValueError(f"sigma must have one value per sample ({len(x)}), got {sig.numel()}")
    return _blur_samples(x, sig, kernel_size, p, generator)


def _gaussian_blur(x: torch.Tensor, cfg: GaussianBlurConfig, generator: torch.Generator | None) -> torch.Tensor:
    n = len(x)
    if isinstance(cfg.sigma, tuple):
        if generator is None:
            raise ValueError("a sigma range needs a generator")
        sig = torch.empty(n).uniform_(cfg.sigma[0], cfg.sigma[1], generator=generator).double()
    else:
        sig = torch.full((n,), float(cfg.sigma), dtype=torch.float64)
    return _blur_samples(x, sig, cfg.kernel_size, cfg.p, generator)


def _blur_samples(
    x: torch.Tensor, sig: torch.Tensor, kernel_size: int, p: float | None, generator: torch.Generator | None
) -> torch.Tensor:
    """Blur sample k with sigma sig[k] (a CPU float64 (N,) tensor; none where sig[k] <= 0), only
    a random share p of the samples when p is given."""
    _check_batch(x)
    n, c, h, w = x.shape
    pad = kernel_size // 2
    if pad >= h or pad >= w:
        raise ValueError(f"kernel_size {kernel_size} needs H and W > {pad} for reflect padding, got {h}x{w}")
    if p is not None:
        if generator is None:
            raise ValueError("p needs a generator")
        sig = torch.where(_chance(n, p, generator), sig, torch.zeros_like(sig))
    chosen = torch.nonzero(sig > 0).flatten()  # on the CPU: choosing costs no device sync
    out = x.clone()
    if len(chosen) == 0:
        return out
    m = len(chosen)
    # Only the chosen samples are convolved; per-sample kernels as one grouped conv over m*C.
    kernels = _on(_gaussian_kernels(sig[chosen], kernel_size), x, x.dtype).repeat_interleave(c, 0)
    idx = _on(chosen, x)
    flat = F.pad(x.index_select(0, idx).reshape(1, m * c, h, w), (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, kernels.view(m * c, 1, kernel_size, 1), groups=m * c)
    flat = F.conv2d(flat, kernels.view(m * c, 1, 1, kernel_size), groups=m * c)
    return out.index_copy_(0, idx, flat.view(m, c, h, w))


# --- mixup / cutmix (timm.data.Mixup, mode="batch") ----------------------------------------


@dataclass(frozen=True)
class MixupConfig:
    alpha: float = 0.8  # timm's ImageNet recipes (--mixup 0.8)

    def __post_init__(self):
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")


@dataclass(frozen=True)
class CutMixConfig:
    alpha: float = 1.0  # CutMix paper; timm recipes (--cutmix 1.0)

    def __post_init__(self):
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")


def _beta(alpha: float, generator: torch.Generator) -> float:
    """One Beta(alpha, alpha) draw as G1 / (G1 + G2); torch.distributions takes no generator."""
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    g = torch._standard_gamma(torch.full((2,), float(alpha), dtype=torch.float64), generator=generator)
    total = float(g.sum())
    if total == 0:  # both gammas underflow for tiny alpha, where Beta puts its mass on 0 and 1
        return float(torch.rand(1, generator=generator).item() < 0.5)
    return float(g[0]) / total


def _check_targets(x: torch.Tensor, y: torch.Tensor) -> None:
    _check_batch(x)
    if y.dim() != 2 or len(y) != len(x) or not y.is_floating_point():
        raise ValueError(f"targets must be float (N, classes) one-hot or soft, got {y.dtype} {tuple(y.shape)}")


def mixup(
    x: torch.Tensor, y_onehot: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix the batch with itself flipped: lam * x + (1 - lam) * x.flip(0), one lam ~
    Beta(alpha, alpha) per batch, targets mixed alike (timm Mixup, mode="batch")."""
    _check_targets(x, y_onehot)
    lam = _beta(alpha, generator)
    return x * lam + x.flip(0) * (1.0 - lam), y_onehot * lam + y_onehot.flip(0) * (1.0 - lam)


def cutmix_box(h: int, w: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """timm rand_bbox: a box of side sqrt(1 - lam) of the image, centre uniform, clipped to
    the image; (y0, y1, x0, x1)."""
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy = int(torch.randint(0, h, (1,), generator=generator))
    cx = int(torch.randint(0, w, (1,), generator=generator))
    y0, y1 = min(max(cy - cut_h // 2, 0), h), min(max(cy + (cut_h + 1) // 2, 0), h)
    x0, x1 = min(max(cx - cut_w // 2, 0), w), min(max(cx + (cut_w + 1) // 2, 0), w)
    return y0, y1, x0, x1


def _paste(x: torch.Tensor, box: tuple[int, int, int, int]) -> tuple[torch.Tensor, float]:
    """x with the box taken from the flipped batch, and the share of each image kept
    (timm's correct_lam=True)."""
    y0, y1, x0, x1 = box
    h, w = x.shape[-2:]
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def cutmix(
    x: torch.Tensor, y_onehot: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste one box of the flipped batch into every sample (timm rand_bbox: side
    sqrt(1 - lam) of the image, centre uniform, clipped to the image), then weigh the targets
    by the area actually kept (timm's correct_lam=True)."""
    _check_targets(x, y_onehot)
    lam = _beta(alpha, generator)
    out, lam = _paste(x, cutmix_box(*x.shape[-2:], lam, generator))
    return out, y_onehot * lam + y_onehot.flip(0) * (1.0 - lam)


@dataclass(frozen=True)
class MixConfig:
    """timm.data.Mixup in mode "batch": one decision and one lambda per batch (train.mixup_alpha,
    cutmix_alpha, mix_prob, mix_switch_prob, label_smoothing)."""

    mixup_alpha: float = 0.0  # 0: no mixup
    cutmix_alpha: float = 0.0  # 0: no cutmix
    prob: float = 1.0  # share of batches mixed
    switch_prob: float = 0.5  # cutmix instead of mixup, when both are on
    label_smoothing: float = 0.0

    def __post_init__(self):
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0 (0: off)")
        _check_prob("prob", self.prob)
        _check_prob("switch_prob", self.switch_prob)
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


def smoothed_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """timm mixup_target's targets before mixing: smoothing / C off, 1 - smoothing + that on."""
    off = smoothing / num_classes
    return torch.full((len(labels), num_classes), off, device=labels.device).scatter_(
        1, labels.long().view(-1, 1), 1.0 - smoothing + off
    )


def mix_batch(
    x: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: MixConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, float, str]:
    """(images, soft targets, lam, "mixup" | "cutmix" | "none") for one batch, with timm's draws
    in timm's order: mixed with probability `prob`; cutmix with probability `switch_prob` when
    both are on; lam ~ Beta(alpha, alpha); cutmix's lam corrected to the box that fits. An
    unmixed batch keeps its images and gets the smoothed one-hot targets."""
    _check_batch(x)
    targets = smoothed_one_hot(labels, num_classes, cfg.label_smoothing)
    kind = "none"
    if (cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0) and float(torch.rand(1, generator=generator)) < cfg.prob:
        if cfg.mixup_alpha > 0 and cfg.cutmix_alpha > 0:
            kind = "cutmix" if float(torch.rand(1, generator=generator)) < cfg.switch_prob else "mixup"
        else:
            kind = "mixup" if cfg.mixup_alpha > 0 else "cutmix"
        lam = _beta(cfg.cutmix_alpha if kind == "cutmix" else cfg.mixup_alpha, generator)
    else:
        lam = 1.0
    if lam == 1.0:
        return x, targets, 1.0, "none"
    if kind == "cutmix":
        x, lam = _paste(x, cutmix_box(*x.shape[-2:], lam, generator))
    else:
        x = x * lam + x.flip(0) * (1.0 - lam)
    return x, targets * lam + targets.flip(0) * (1.0 - lam), lam, kind


# --- composer -------------------------------------------------------------------------------

# op name -> (its config dataclass, the kernel that applies a checked config to a batch)
OPS: dict[str, tuple[type, Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]]] = {
    "random_crop": (RandomCropConfig, _random_crop),
    "horizontal_flip": (HorizontalFlipConfig, _horizontal_flip),
    "random_resized_crop": (RandomResizedCropConfig, _random_resized_crop),
    "color_jitter": (ColorJitterConfig, _color_jitter),
    "random_grayscale": (RandomGrayscaleConfig, _random_grayscale),
    "gaussian_blur": (GaussianBlurConfig, _gaussian_blur),
}
# Ops that are gone, each with where its job is done now: an old config names the key to use.
REMOVED_OPS = {
    "normalize": (
        "inputs are normalised by the input pipeline, in training and evaluation alike: "
        "set train.normalize: {mean: [...], std: [...]} instead"
    ),
}


@dataclass(frozen=True)
class Augment:
    """Ops applied in order to a batch, built from config:

    >>> augment = Augment.from_config([{"op": "random_crop", "size": 32, "padding": 4},
    ...                                {"op": "horizontal_flip"}])
    >>> x = augment(torch.rand(8, 3, 32, 32), torch.Generator().manual_seed(0))
    """

    steps: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_config(cls, specs: Sequence[Mapping[str, Any]], where: str = "") -> Augment:
        """Each spec is {"op": name, **settings}; an unknown op or key or a bad value raises a
        ValueError (ConfigError) that names it, its position (after `where`, the setting that
        holds the list) and the valid choices. The settings are checked here, once: calls run
        the ops without checking them again."""
        steps = []
        for i, spec in enumerate(specs):
            settings = dict(spec)
            name = settings.pop("op", None)
            if name in REMOVED_OPS:
                raise ConfigError(f"{where}[{i}].op: {name!r} is not an augmentation op; {REMOVED_OPS[name]}")
            if name not in OPS:
                raise ConfigError(f"{where}[{i}].op: unknown op {name!r}; expected one of {sorted(OPS)}")
            steps.append((name, config_from_dict(OPS[name][0], settings, where=f"{where}[{i}]({name})")))
        return cls(tuple(steps))

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for name, cfg in self.steps:
            x = OPS[name][1](x, cfg, generator)
        return x
