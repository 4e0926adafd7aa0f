"""Per-sample augmentation policies on the device: RandAugment, AutoAugment, random erasing.

The hybrid study's recipes (docs/methods.md §1.3) take these from two libraries, each applied
per image in a DataLoader: timm's `rand_augment_transform("rand-m9-mstd0.5-inc1")` and
`RandomErasing(0.25, mode="pixel")` (HCL's CvT runner, through `create_transform`), and
torchvision's `AutoAugment(AutoAugmentPolicy.CIFAR10)` (HCL's ConvNeXt CIFAR loader). Here a
batch (N, C, H, W, float in [0, 1]) gets them with every sample's choices drawn on the CPU
from the run's seeded generator, as data/augment.py does (one seed, the same images on CPU
and GPU; a resumed run continues identically). The ops are vectorised over the samples that
drew them, each with its own magnitude.

Semantics:
- RandAugment (timm.data.auto_augment): `n` layers, each an op drawn uniformly with
  replacement from the 15 ops (`inc1`: the "increasing" set, whose strength grows with the
  magnitude), applied with probability `p` (0.5), magnitude ~ N(m, mstd) clipped to
  [0, mmax (10)], signed ops negated with probability 1/2; fill for geometric ops = the
  dataset mean (timm's `img_mean`), bicubic sampling (HCL passes `interpolation: bicubic`).
- AutoAugment (torchvision.transforms.AutoAugment): one of the policy's 25 sub-policies per
  image, each of its two ops applied with its probability and bin magnitude (10 bins over
  torchvision's ranges), signed ops negated with probability 1/2, fill 0, nearest sampling.
- Random erasing (timm.data.RandomErasing, mode "pixel", count 1): with probability p one box
  of area U(0.02, 1/3) x H x W and log-uniform aspect in (0.3, 1/0.3), the first of 10 tries
  that fits, filled with per-pixel N(0, 1) noise in the normalised input space (here: mean +
  std x noise before the pipeline normalises).

Differences, all in how pixels are computed, none in which op runs with which strength:
- PIL works on uint8 images; here the point ops (posterize, solarize, equalize, the LUT ops)
  quantise to 255 levels as PIL would, the blend ops (brightness, colour, contrast,
  sharpness) stay in float. Contrast's grey level is the float mean (PIL rounds it).
- Geometric ops resample with grid_sample (bicubic or nearest) and fill the points that fall
  outside the image; PIL resamples its own way. The direction a signed op takes at a given
  sign may be the mirror of PIL's; both signs are equally likely, so the distribution is
  the same.
- Random erasing's noise is drawn on the batch's device from a generator seeded by the CPU
  stream: the same run on the same kind of device erases the same noise, a CPU and a GPU run
  do not (the boxes are the same).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .augment import _check_batch, _on, rgb_to_grayscale
from .policy_config import AUTO_AUGMENT_POLICIES, LEVEL_DENOM, RandAugmentConfig

__all__ = ["AUTO_AUGMENT_POLICIES", "RandAugmentConfig", "rand_augment", "auto_augment", "random_erasing"]

TRANSLATE_PCT = 0.45  # timm TranslateXRel/YRel default `translate_pct`
ERASING_TRIES = 10  # timm RandomErasing: attempts per image
ERASING_AREA = (0.02, 1 / 3)  # timm RandomErasing min_area, max_area
ERASING_ASPECT = (0.3, 1 / 0.3)  # timm RandomErasing min_aspect, max_aspect (log-uniform)

# --- the ops: each takes a batch and one argument per sample (a CPU float64 (N,) tensor) -----


def _blend(x: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ImageEnhance: degenerate + factor x (image - degenerate), clipped to [0, 1]."""
    f = _on(factor, x, x.dtype).view(-1, 1, 1, 1)
    return (degenerate + f * (x - degenerate)).clamp_(0, 1)


def _quantised(x: torch.Tensor) -> torch.Tensor:
    """The uint8 levels PIL would see, as float."""
    return x.mul(255).round_()


def _brightness(x, factor, fill):
    return _blend(x, torch.zeros_like(x), factor)


def _color(x, factor, fill):
    return _blend(x, rgb_to_grayscale(x, x.shape[1]), factor)


def _contrast(x, factor, fill):
    mean = rgb_to_grayscale(x).mean((1, 2, 3), keepdim=True)
    return _blend(x, mean.expand_as(x), factor)


def _sharpness(x, factor, fill):
    """PIL's SMOOTH filter (centre 5, neighbours 1, /13) inside, the border pixels kept."""
    c = x.shape[1]
    kernel = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5
    kernel = (kernel / 13).expand(c, 1, 3, 3)
    degenerate = x.clone()
    degenerate[:, :, 1:-1, 1:-1] = F.conv2d(x, kernel, groups=c)
    return _blend(x, degenerate, factor)


def _invert(x, arg, fill):
    return 1 - x


def _auto_contrast(x, arg, fill):
    """Each channel stretched to [0, 1]; a flat channel is left as it is (PIL autocontrast)."""
    lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    flat = hi <= lo
    scale = torch.where(flat, torch.ones_like(hi), 1 / (hi - lo).clamp_min(1e-12))
    return torch.where(flat, x, ((x - lo) * scale).clamp_(0, 1))


def _equalize(x, arg, fill):
    """Histogram equalisation per image and channel, PIL's rule (torchvision's kernel on uint8)."""
    from torchvision.transforms.v2.functional import equalize

    return equalize(_quantised(x).to(torch.uint8)).to(x.dtype) / 255


def _posterize(x, bits, fill):
    """Keep the top `bits` bits of each uint8 level (0 bits: black, as PIL)."""
    b = bits.long().clamp(0, 8)
    mask = _on(torch.bitwise_left_shift(torch.full_like(b, 255), 8 - b) & 255, x).view(-1, 1, 1, 1)
    return (_quantised(x).long() & mask).to(x.dtype) / 255


def _solarize(x, threshold, fill):
    """Invert the uint8 levels >= threshold (PIL solarize; threshold 256: none)."""
    t = _on(threshold, x, x.dtype).view(-1, 1, 1, 1)
    return torch.where(_quantised(x) >= t, 1 - x, x)


def _solarize_add(x, add, fill):
    """timm SolarizeAdd: levels below 128 raised by `add`, capped at 255."""
    a = _on(add, x, x.dtype).view(-1, 1, 1, 1)
    q = _quantised(x)
    return torch.where(q < 128, (q + a).clamp_(max=255) / 255, x)


def _warp(x: torch.Tensor, matrices: torch.Tensor, fill: tuple[float, ...], mode: str) -> torch.Tensor:
    """Resample each sample at A @ (px, py, 1), A its (2, 3) matrix from output to input pixel
    coordinates (pixel k spans [k, k + 1]); points outside the image take `fill`."""
    n, c, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64) + 0.5, torch.arange(w, dtype=torch.float64) + 0.5, indexing="ij"
    )
    points = torch.stack((xs, ys, torch.ones_like(xs)), -1).view(1, h * w, 3)
    src = (points @ matrices.transpose(1, 2)).view(n, h, w, 2)  # input coordinates, float64 on the CPU
    inside = (src[..., 0] >= 0) & (src[..., 0] < w) & (src[..., 1] >= 0) & (src[..., 1] < h)
    grid = torch.stack((2 * src[..., 0] / w - 1, 2 * src[..., 1] / h - 1), -1)
    out = F.grid_sample(x, _on(grid, x, x.dtype), mode=mode, padding_mode="border", align_corners=False)
    if mode == "bicubic":
        out = out.clamp_(0, 1)
    fill_value = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1).expand(1, c, 1, 1)
    return torch.where(_on(inside, x).unsqueeze(1), out, fill_value)


def _affine(rows: list[list[torch.Tensor]]) -> torch.Tensor:
    return torch.stack([torch.stack(row, -1) for row in rows], 1)


def _geometric(kind: str):
    def op(x, v, fill, mode="nearest"):
        h, w = x.shape[-2:]
        one, zero = torch.ones_like(v), torch.zeros_like(v)
        if kind == "shear_x":  # PIL (1, v, 0, 0, 1, 0): x_in = x + v y, about the top-left corner
            m = _affine([[one, v, zero], [zero, one, zero]])
        elif kind == "shear_y":
            m = _affine([[one, zero, zero], [v, one, zero]])
        elif kind == "translate_x":  # v pixels
            m = _affine([[one, zero, v], [zero, one, zero]])
        elif kind == "translate_y":
            m = _affine([[one, zero, zero], [zero, one, v]])
        else:  # rotate by v degrees about the centre
            a = torch.deg2rad(v)
            cx, cy = w / 2, h / 2
            cos, sin = torch.cos(a), torch.sin(a)
            m = _affine([[cos, -sin, cx - cos * cx + sin * cy], [sin, cos, cy - sin * cx - cos * cy]])
        return _warp(x, m, fill, mode)

    return op


def _identity(x, arg, fill):
    return x


# kernel name -> function(x, per-sample argument, fill[, mode]); geometric kernels take a mode.
KERNELS = {
    "identity": _identity,
    "auto_contrast": _auto_contrast,
    "equalize": _equalize,
    "invert": _invert,
    "rotate": _geometric("rotate"),
    "shear_x": _geometric("shear_x"),
    "shear_y": _geometric("shear_y"),
    "translate_x": _geometric("translate_x"),
    "translate_y": _geometric("translate_y"),
    "posterize": _posterize,
    "solarize": _solarize,
    "solarize_add": _solarize_add,
    "brightness": _brightness,
    "color": _color,
    "contrast": _contrast,
    "sharpness": _sharpness,
}
KERNEL_NAMES = tuple(KERNELS)
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def apply_kernels(
    x: torch.Tensor, kernel: torch.Tensor, arg: torch.Tensor, fill: tuple[float, ...], mode: str
) -> torch.Tensor:
    """Sample k gets KERNEL_NAMES[kernel[k]] with argument arg[k] (both CPU tensors); each
    kernel runs once, on the samples that drew it."""
    out = x.clone()
    for k in torch.unique(kernel).tolist():
        name = KERNEL_NAMES[k]
        if name == "identity":
            continue
        chosen = torch.nonzero(kernel == k).flatten()
        idx = _on(chosen, x)
        sub = x.index_select(0, idx)
        args = (sub, arg[chosen], fill) + ((mode,) if name in GEOMETRIC else ())
        out.index_copy_(0, idx, KERNELS[name](*args).to(x.dtype))
    return out


# --- RandAugment (timm) ----------------------------------------------------------------------

# timm _RAND_TRANSFORMS / _RAND_INCREASING_TRANSFORMS, in timm's order: (timm name, kernel).
RAND_OPS = (
    ("AutoContrast", "auto_contrast"),
    ("Equalize", "equalize"),
    ("Invert", "invert"),
    ("Rotate", "rotate"),
    ("Posterize", "posterize"),
    ("Solarize", "solarize"),
    ("SolarizeAdd", "solarize_add"),
    ("Color", "color"),
    ("Contrast", "contrast"),
    ("Brightness", "brightness"),
    ("Sharpness", "sharpness"),
    ("ShearX", "shear_x"),
    ("ShearY", "shear_y"),
    ("TranslateXRel", "translate_x"),
    ("TranslateYRel", "translate_y"),
)


def rand_augment_arguments(
    name: str, magnitude: torch.Tensor, sign: torch.Tensor, size: tuple[int, int], increasing: bool
) -> torch.Tensor:
    """timm's level -> argument rules (auto_augment.py `_*_level_to_arg`), per sample; `sign`
    is +-1 (timm _randomly_negate)."""
    level = magnitude / LEVEL_DENOM
    if name == "Rotate":
        return level * 30 * sign
    if name in ("ShearX", "ShearY"):
        return level * 0.3 * sign
    if name == "TranslateXRel":
        return level * TRANSLATE_PCT * sign * size[1]
    if name == "TranslateYRel":
        return level * TRANSLATE_PCT * sign * size[0]
    if name == "Posterize":
        bits = torch.floor(level * 4)
        return 4 - bits if increasing else bits
    if name == "Solarize":
        threshold = torch.clamp(torch.floor(level * 256), max=256)
        return 256 - threshold if increasing else threshold
    if name == "SolarizeAdd":
        return torch.clamp(torch.floor(level * 110), max=128)
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        if increasing:
            return torch.clamp(1 + sign * level * 0.9, min=0.1)
        return level * 1.8 + 0.1
    return torch.zeros_like(magnitude)


def rand_augment(
    x: torch.Tensor, cfg: RandAugmentConfig, generator: torch.Generator, fill: tuple[float, ...] = (0.5,)
) -> torch.Tensor:
    """timm RandAugment per sample (module docstring)."""
    _check_batch(x)
    n, size = len(x), tuple(x.shape[-2:])
    draws = cfg.num_layers
    ops = torch.randint(len(RAND_OPS), (n, draws), generator=generator)
    runs = torch.rand(n, draws, generator=generator, dtype=torch.float64) <= cfg.prob
    if math.isinf(cfg.magnitude_std):
        magnitude = torch.rand(n, draws, generator=generator, dtype=torch.float64) * cfg.magnitude
    else:
        noise = torch.randn(n, draws, generator=generator, dtype=torch.float64)
        magnitude = cfg.magnitude + cfg.magnitude_std * noise
    magnitude = magnitude.clamp(0, cfg.magnitude_max)
    sign = torch.where(torch.rand(n, draws, generator=generator, dtype=torch.float64) > 0.5, -1.0, 1.0)
    for layer in range(draws):
        kernel = torch.zeros(n, dtype=torch.long)
        arg = torch.zeros(n, dtype=torch.float64)
        for i, (name, kernel_name) in enumerate(RAND_OPS):
            mine = (ops[:, layer] == i) & runs[:, layer]
            if mine.any():
                kernel[mine] = KERNEL_NAMES.index(kernel_name)
                arg[mine] = rand_augment_arguments(
                    name, magnitude[mine, layer], sign[mine, layer], size, cfg.increasing
                )
        x = apply_kernels(x, kernel, arg, fill, "bicubic")
    return x


# --- AutoAugment (torchvision) ---------------------------------------------------------------

# torchvision op name -> (kernel, signed)
AUTO_OPS = {
    "ShearX": ("shear_x", True),
    "ShearY": ("shear_y", True),
    "TranslateX": ("translate_x", True),
    "TranslateY": ("translate_y", True),
    "Rotate": ("rotate", True),
    "Brightness": ("brightness", True),
    "Color": ("color", True),
    "Contrast": ("contrast", True),
    "Sharpness": ("sharpness", True),
    "Posterize": ("posterize", False),
    "Solarize": ("solarize", False),
    "AutoContrast": ("auto_contrast", False),
    "Equalize": ("equalize", False),
    "Invert": ("invert", False),
}
AUTO_BINS = 10  # torchvision AutoAugment._augmentation_space(10, ...)


def auto_augment_policy(name: str) -> list:
    """torchvision's sub-policies for `name` ((op, probability, bin or None) x 2 each)."""
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy

    if name not in AUTO_AUGMENT_POLICIES:
        raise ValueError(f"auto_augment must be one of {AUTO_AUGMENT_POLICIES}, got {name!r}")
    return AutoAugment(AutoAugmentPolicy(name)).policies


def auto_augment_magnitude(name: str, bin_index: int, size: tuple[int, int]) -> float:
    """torchvision AutoAugment._augmentation_space(10, (H, W)), bin `bin_index`, before its sign;
    the kernel's argument (Translate: whole pixels; Shear: tan(atan(m)) = m; enhance: 1 + m)."""
    h, w = size
    spaces = {
        "ShearX": torch.linspace(0.0, 0.3, AUTO_BINS),
        "ShearY": torch.linspace(0.0, 0.3, AUTO_BINS),
        "TranslateX": torch.linspace(0.0, 150.0 / 331.0 * w, AUTO_BINS),
        "TranslateY": torch.linspace(0.0, 150.0 / 331.0 * h, AUTO_BINS),
        "Rotate": torch.linspace(0.0, 30.0, AUTO_BINS),
        "Brightness": torch.linspace(0.0, 0.9, AUTO_BINS),
        "Color": torch.linspace(0.0, 0.9, AUTO_BINS),
        "Contrast": torch.linspace(0.0, 0.9, AUTO_BINS),
        "Sharpness": torch.linspace(0.0, 0.9, AUTO_BINS),
        "Posterize": 8 - (torch.arange(AUTO_BINS) / ((AUTO_BINS - 1) / 4)).round().int(),
        "Solarize": torch.linspace(255.0, 0.0, AUTO_BINS),
    }
    if name not in spaces:
        return 0.0
    return float(spaces[name][bin_index])


def auto_augment(
    x: torch.Tensor, policy: str, generator: torch.Generator, fill: tuple[float, ...] = (0.0,)
) -> torch.Tensor:
    """torchvision AutoAugment per sample (module docstring)."""
    _check_batch(x)
    policies = auto_augment_policy(policy)
    n, size = len(x), tuple(x.shape[-2:])
    chosen = torch.randint(len(policies), (n,), generator=generator)
    probs = torch.rand(n, 2, generator=generator)
    negative = torch.randint(2, (n, 2), generator=generator) == 0
    for slot in range(2):
        kernel = torch.zeros(n, dtype=torch.long)
        arg = torch.zeros(n, dtype=torch.float64)
        for i, sub_policy in enumerate(policies):
            name, p, bin_index = sub_policy[slot]
            mine = (chosen == i) & (probs[:, slot] <= p)
            if not mine.any():
                continue
            kernel_name, signed = AUTO_OPS[name]
            value = auto_augment_magnitude(name, bin_index, size) if bin_index is not None else 0.0
            if name in ("TranslateX", "TranslateY"):
                value = float(int(value))
            values = torch.full((int(mine.sum()),), value, dtype=torch.float64)
            if signed:
                values = torch.where(negative[mine, slot], -values, values)
            if name in ("Brightness", "Color", "Contrast", "Sharpness"):
                values = 1 + values
            kernel[mine] = KERNEL_NAMES.index(kernel_name)
            arg[mine] = values
        x = apply_kernels(x, kernel, arg, fill, "nearest")
    return x


# --- random erasing (timm) -------------------------------------------------------------------


def erasing_boxes(n: int, height: int, width: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """(N, 4) int64 boxes (top, left, h, w) by timm RandomErasing's rule; h = w = 0 where a
    sample is not erased (probability 1 - p, or no try of the 10 fits)."""
    erase = torch.rand(n, generator=generator) < p
    area = height * width
    target = area * torch.empty(n, ERASING_TRIES, dtype=torch.float64).uniform_(*ERASING_AREA, generator=generator)
    log_ratio = (math.log(ERASING_ASPECT[0]), math.log(ERASING_ASPECT[1]))
    aspect = torch.exp(torch.empty(n, ERASING_TRIES, dtype=torch.float64).uniform_(*log_ratio, generator=generator))
    h = torch.round(torch.sqrt(target * aspect)).long()
    w = torch.round(torch.sqrt(target / aspect)).long()
    fits = (w < width) & (h < height)
    found = fits.any(1) & erase
    first = (~fits).long().cumprod(1).sum(1).clamp(max=ERASING_TRIES - 1)[:, None]
    bh = torch.where(found, h.gather(1, first)[:, 0], 0)
    bw = torch.where(found, w.gather(1, first)[:, 0], 0)
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)  # timm: randint(0, H - h) inclusive
    top = torch.minimum(torch.floor(u[:, 0] * (height - bh + 1)).long(), height - bh)
    left = torch.minimum(torch.floor(u[:, 1] * (width - bw + 1)).long(), width - bw)
    return torch.stack((top, left, bh, bw), 1)


def random_erasing(
    x: torch.Tensor,
    p: float,
    generator: torch.Generator,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> torch.Tensor:
    """Erase one box per chosen sample with N(0, 1) noise of the normalised space: mean + std x
    noise here, before the pipeline normalises with (mean, std) (none: the noise itself)."""
    _check_batch(x)
    n, c, h, w = x.shape
    boxes = erasing_boxes(n, h, w, p, generator)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    if not bool((boxes[:, 2] > 0).any()):
        return x
    ys, xs = torch.arange(h), torch.arange(w)
    top, left, bh, bw = (v.view(n, 1, 1) for v in boxes.unbind(1))
    inside = (ys.view(1, h, 1) >= top) & (ys.view(1, h, 1) < top + bh) & (xs.view(1, 1, w) >= left)
    inside = _on((inside & (xs.view(1, 1, w) < left + bw)).unsqueeze(1), x)
    device_generator = torch.Generator(device=x.device).manual_seed(seed)
    noise = torch.randn(x.shape, generator=device_generator, device=x.device, dtype=x.dtype)
    if mean is not None:
        noise = noise * std.to(x.dtype) + mean.to(x.dtype)
    return torch.where(inside, noise, x)
