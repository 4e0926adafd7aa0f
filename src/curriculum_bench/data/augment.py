"""On-device, batched, per-sample augmentation (torchvision semantics, no PIL, no loops).

Batches are float (N, C, H, W) in [0, 1] on any device. Every random op draws its
per-sample parameters on the CPU from an explicit `torch.Generator`, then moves them to the
batch's device, so a seed gives the same augmentation on CPU and GPU and a resumed run
(which restores the generator) continues identically. torchvision.transforms.v2 applies
one random draw to a whole batch; these ops draw one per sample, as a per-image
DataLoader pipeline would. Differences from torchvision are noted per op.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import ConfigError, config_from_dict

LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601-2 as torchvision rounds it (rgb_to_grayscale)


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return (low + (high - low) * torch.rand(n, generator=generator)).to(device)


def _chance(n: int, p: float, generator: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) < p).to(device)


def _per_sample(mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, 1, 1, 1)


@dataclass(frozen=True)
class RandomCropConfig:
    size: int = 32       # CIFAR: RandomCrop(32, padding=4)
    padding: int = 4
    padding_mode: str = "constant"  # constant (zeros) | reflect | replicate

    def __post_init__(self):
        if self.size < 1 or self.padding < 0:
            raise ValueError(f"size must be >= 1 and padding >= 0, got {self.size}, {self.padding}")
        if self.padding_mode not in ("constant", "reflect", "replicate"):
            raise ValueError(f"padding_mode must be constant, reflect or replicate, got {self.padding_mode!r}")


def random_crop(x: torch.Tensor, cfg: RandomCropConfig, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    p = cfg.padding
    padded = F.pad(x, (p, p, p, p), mode=cfg.padding_mode) if p else x
    max_top, max_left = h + 2 * p - cfg.size, w + 2 * p - cfg.size
    if max_top < 0 or max_left < 0:
        raise ValueError(f"random_crop: size {cfg.size} exceeds the padded image {h + 2 * p}x{w + 2 * p}")
    top = torch.randint(0, max_top + 1, (n,), generator=generator).to(x.device)
    left = torch.randint(0, max_left + 1, (n,), generator=generator).to(x.device)
    steps = torch.arange(cfg.size, device=x.device)
    rows = (top[:, None] + steps)[:, :, None]   # (N, S, 1)
    cols = (left[:, None] + steps)[:, None, :]  # (N, 1, S)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class HorizontalFlipConfig:
    p: float = 0.5

    def __post_init__(self):
        if not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1], got {self.p}")


def horizontal_flip(x: torch.Tensor, cfg: HorizontalFlipConfig, generator: torch.Generator) -> torch.Tensor:
    flip = _chance(len(x), cfg.p, generator, x.device)
    return torch.where(_per_sample(flip), x.flip(-1), x)


@dataclass(frozen=True)
class RandomResizedCropConfig:
    size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)      # torchvision defaults
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self):
        object.__setattr__(self, "scale", tuple(self.scale))
        object.__setattr__(self, "ratio", tuple(self.ratio))
        if self.size < 1 or not 0 < self.scale[0] <= self.scale[1] or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"need size >= 1, 0 < scale[0] <= scale[1], 0 < ratio[0] <= ratio[1]; "
                             f"got {self.size}, {self.scale}, {self.ratio}")


def crop_boxes(n: int, h: int, w: int, cfg: RandomResizedCropConfig, generator: torch.Generator):
    """torchvision's RandomResizedCrop.get_params for n samples: 10 tries, else a centre crop."""
    tries = 10
    area = h * w * (cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * torch.rand(n, tries, generator=generator))
    log_lo, log_hi = math.log(cfg.ratio[0]), math.log(cfg.ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, tries, generator=generator))
    cw = torch.sqrt(area * aspect).round()
    ch = torch.sqrt(area / aspect).round()
    valid = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = valid.float().argmax(1)
    found = valid.any(1)
    bw = cw[torch.arange(n), first]
    bh = ch[torch.arange(n), first]
    # Fallback: the whole image, cropped to the nearest allowed aspect ratio.
    in_ratio = w / h
    if in_ratio < cfg.ratio[0]:
        fw, fh = w, round(w / cfg.ratio[0])
    elif in_ratio > cfg.ratio[1]:
        fw, fh = round(h * cfg.ratio[1]), h
    else:
        fw, fh = w, h
    bw = torch.where(found, bw, torch.full_like(bw, fw))
    bh = torch.where(found, bh, torch.full_like(bh, fh))
    u, v = torch.rand(n, generator=generator), torch.rand(n, generator=generator)
    top = torch.where(found, torch.floor(u * (h - bh + 1)), (h - bh) // 2)
    left = torch.where(found, torch.floor(v * (w - bw + 1)), (w - bw) // 2)
    return top, left, bh, bw


def random_resized_crop(x: torch.Tensor, cfg: RandomResizedCropConfig, generator: torch.Generator) -> torch.Tensor:
    """Per-sample box, resized bilinearly (grid_sample, align_corners=False; torchvision's
    resize antialiases when downscaling, this does not)."""
    n, _, h, w = x.shape
    top, left, bh, bw = (t.to(x.device, x.dtype) for t in crop_boxes(n, h, w, cfg, generator))
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = bw / w
    theta[:, 0, 2] = (2 * left + bw) / w - 1
    theta[:, 1, 1] = bh / h
    theta[:, 1, 2] = (2 * top + bh) / h - 1
    grid = F.affine_grid(theta, (n, x.shape[1], cfg.size, cfg.size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class ColorJitterConfig:
    brightness: float = 0.4   # SimCLR's strength-0.5 jitter is 0.4, 0.4, 0.4, 0.1
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    p: float = 0.8            # SimCLR: RandomApply(ColorJitter, p=0.8)

    def __post_init__(self):
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5 or not 0 <= self.p <= 1:
            raise ValueError(f"hue must be in [0, 0.5] and p in [0, 1], got {self.hue}, {self.p}")


def grayscale(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    high, _ = x.max(1)
    low, _ = x.min(1)
    delta = high - low
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(high == r, ((g - b) / safe) % 6,
                      torch.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    saturation = torch.where(high > 0, delta / torch.where(high > 0, high, torch.ones_like(high)),
                             torch.zeros_like(high))
    return torch.stack([hue, saturation, high], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    hue, saturation, value = x.unbind(1)
    k = (torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
         + hue.unsqueeze(1) * 6) % 6
    ramp = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return value.unsqueeze(1) - (value * saturation).unsqueeze(1) * ramp


def color_jitter(x: torch.Tensor, cfg: ColorJitterConfig, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation, hue, each with a per-sample factor, in that fixed
    order (torchvision randomises the order per call); applied to a sample with probability p."""
    n, device = len(x), x.device
    apply = _per_sample(_chance(n, cfg.p, generator, device))

    def factor(v: float) -> torch.Tensor:
        return _per_sample(_uniform(n, max(0.0, 1 - v), 1 + v, generator, device).to(x.dtype))

    out = x
    if cfg.brightness:
        out = (out * factor(cfg.brightness)).clamp(0, 1)
    if cfg.contrast:
        mean = grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
        c = factor(cfg.contrast)
        out = (c * out + (1 - c) * mean).clamp(0, 1)
    if x.shape[1] == 3 and cfg.saturation:
        s = factor(cfg.saturation)
        out = (s * out + (1 - s) * grayscale(out)).clamp(0, 1)
    if x.shape[1] == 3 and cfg.hue:
        shift = _uniform(n, -cfg.hue, cfg.hue, generator, device).to(x.dtype).view(-1, 1, 1)
        hsv = rgb_to_hsv(out)
        hsv = torch.stack([(hsv[:, 0] + shift) % 1.0, hsv[:, 1], hsv[:, 2]], 1)
        out = hsv_to_rgb(hsv).clamp(0, 1)
    return torch.where(apply, out, x)


@dataclass(frozen=True)
class RandomGrayscaleConfig:
    p: float = 0.2  # SimCLR

    def __post_init__(self):
        if not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1], got {self.p}")


def random_grayscale(x: torch.Tensor, cfg: RandomGrayscaleConfig, generator: torch.Generator) -> torch.Tensor:
    apply = _chance(len(x), cfg.p, generator, x.device)
    gray = grayscale(x).expand_as(x)
    return torch.where(_per_sample(apply), gray, x)


@dataclass(frozen=True)
class GaussianBlurConfig:
    sigma: float = 1.0       # hybrid repo: fixed sigma 1.0 (spec §1.3)
    kernel_size: int = 5     # hybrid repo: 5 (CvT), 7 (ResNet)
    p: float = 1.0

    def __post_init__(self):
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        if self.sigma < 0 or not 0 <= self.p <= 1:
            raise ValueError(f"sigma must be >= 0 and p in [0, 1], got {self.sigma}, {self.p}")


def gaussian_blur(x: torch.Tensor, sigma: float | torch.Tensor, kernel_size: int,
                  p: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Blur each sample with its own sigma (a float or a (N,) tensor; <= 0 leaves a sample
    exactly as it was), separably, with reflect padding as torchvision's gaussian_blur.
    With p < 1 only a random subset of samples (drawn with `generator`) is blurred."""
    n, c, h, w = x.shape
    sigma = torch.as_tensor(sigma, dtype=torch.float32).flatten().expand(n).clone()
    if p < 1:
        sigma = torch.where(torch.rand(n, generator=generator) < p, sigma, torch.zeros_like(sigma))
    keep = sigma <= 0
    if bool(keep.all()):
        return x
    half = (kernel_size - 1) * 0.5
    t = torch.linspace(-half, half, kernel_size)
    safe = torch.where(keep, torch.ones_like(sigma), sigma)
    kernel = torch.exp(-0.5 * (t[None, :] / safe[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).to(x.device, x.dtype)  # (N, K)
    weights = kernel.repeat_interleave(c, 0)                                # (N*C, K)
    pad = kernel_size // 2
    flat = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, weights.view(n * c, 1, 1, kernel_size), groups=n * c)
    flat = F.conv2d(flat, weights.view(n * c, 1, kernel_size, 1), groups=n * c)
    return torch.where(_per_sample(keep.to(x.device)), x, flat.view(n, c, h, w))


def _gaussian_blur_op(x: torch.Tensor, cfg: GaussianBlurConfig, generator: torch.Generator) -> torch.Tensor:
    return gaussian_blur(x, cfg.sigma, cfg.kernel_size, cfg.p, generator)


@dataclass(frozen=True)
class NormalizeConfig:
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be > 0, got {self.std}")


def normalize(x: torch.Tensor, cfg: NormalizeConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    mean = torch.tensor(cfg.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


OPS = {
    "random_crop": (RandomCropConfig, random_crop),
    "horizontal_flip": (HorizontalFlipConfig, horizontal_flip),
    "random_resized_crop": (RandomResizedCropConfig, random_resized_crop),
    "color_jitter": (ColorJitterConfig, color_jitter),
    "random_grayscale": (RandomGrayscaleConfig, random_grayscale),
    "gaussian_blur": (GaussianBlurConfig, _gaussian_blur_op),
    "normalize": (NormalizeConfig, normalize),
}


class Augment:
    """A list of ops applied in order: `Augment.from_config([{"op": "random_crop", ...}])`."""

    def __init__(self, steps: list[tuple[str, object]]):
        self.steps = steps

    @classmethod
    def from_config(cls, specs: list[dict]) -> "Augment":
        steps = []
        for i, spec in enumerate(specs):
            spec = dict(spec)
            name = spec.pop("op", None)
            if name not in OPS:
                raise ConfigError(f"[{i}].op: unknown op {name!r}; expected one of {sorted(OPS)}")
            steps.append((name, config_from_dict(OPS[name][0], spec, where=f"[{i}]({name})")))
        return cls(steps)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for name, cfg in self.steps:
            x = OPS[name][1](x, cfg, generator)
        return x

