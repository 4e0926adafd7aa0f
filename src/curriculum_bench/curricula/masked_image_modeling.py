"""Self-supervised pretraining by masked image modelling (the catalogue's planned technique).

SimMIM (Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling", CVPR 2022, §3;
official code microsoft/SimMIM, data/data_simmim.py `MaskGenerator`, models/simmim.py), after
MAE (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022): mask random
patches of the input, let the encoder see the masked image, and regress the raw pixels of the
masked patches with a light decoder. docs/methods.md §2.6.

- Mask (SimMIM `MaskGenerator`): the image is cut into `mask_patch_size` squares; exactly
  ceil(ratio x patches) of them, drawn uniformly per image, are masked. Drawn per step from
  the run's Stream.MASK, so a resumed run masks the same patches.
- Masked input: SimMIM replaces a masked patch's embedding by a learned mask token; a
  ConvNet has no patch embedding, so here the token is a learned value per input channel
  that replaces the masked pixels of the network's (normalised) input, starting at 0.
  `mask_token: zero` keeps it at 0 (pixels set to black without normalisation).
- Decoder (SimMIM models/simmim.py): one 1x1 convolution from the encoder's feature map
  (`feature_layer`, at stride s) to s² x C values per position, then PixelShuffle(s): a
  prediction of every input pixel.
- Loss (SimMIM Eq. 1 / models/simmim.py): L1 between prediction and the normalised input,
  on masked pixels only, divided by their number and by C. Each image masks the same count,
  so the mean of the per-image losses the engine takes equals SimMIM's batch ratio.

The pretraining run reads no label: the loss replaces the classifier's cross-entropy, so
its classifier stays at its initialisation (the run's test accuracy is chance). Its
`final_model.pt` (the encoder; decoder and token are the method's own) starts a
fine-tuning run through `pretrained`. Decoder and token train in their own optimiser groups
(the token without weight decay, as SimMIM's skip list), and are saved with the method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import ConfigError
from ..models import named_module
from ..train.hooks import Hook, Stream, TrainState, register_method, seeded_generator
from ..train.speed import run_model

MASK_TOKENS = ("learned", "zero")


@dataclass(frozen=True)
class MIMConfig:
    # The module whose output is the encoder's feature map: the MLT ConvNet's last residual
    # block (64 x 14 x 14 on MNIST, stride 2); SimMIM's encoder output at stride 32.
    feature_layer: str = "block2"
    # SimMIM: 32 px at 192 px input (a 6 x 6 grid); 4 px gives MNIST's 28 px a 7 x 7 grid.
    mask_patch_size: int = 4
    mask_ratio: float = 0.6  # SimMIM default (Tab. 1: 0.1-0.9 similar for 32 px patches)
    mask_token: str = "learned"  # "learned": a trained value per channel | "zero"

    def __post_init__(self):
        if not self.feature_layer:
            raise ValueError("feature_layer must name a module of the model")
        if not isinstance(self.mask_patch_size, int) or self.mask_patch_size < 1:
            raise ValueError(f"mask_patch_size must be an int >= 1, got {self.mask_patch_size!r}")
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.mask_token not in MASK_TOKENS:
            raise ValueError(f"mask_token must be one of {MASK_TOKENS}, got {self.mask_token!r}")


# --- the maths (pure) ---------------------------------------------------------------------------


def random_patch_mask(n: int, grid: tuple[int, int], ratio: float, generator: torch.Generator) -> torch.Tensor:
    """(n, gh, gw) of 0/1: in each image exactly ceil(gh x gw x ratio) patches are 1, each set
    of that size equally likely (SimMIM: np.random.permutation(token_count)[:mask_count])."""
    count = grid[0] * grid[1]
    masked = math.ceil(count * ratio)
    order = torch.rand(n, count, generator=generator).argsort(dim=1)
    mask = torch.zeros(n, count)
    mask.scatter_(1, order[:, :masked], 1.0)
    return mask.view(n, *grid)


def pixel_mask(patch_mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(n, gh, gw) patch mask -> (n, 1, gh x p, gw x p) pixel mask."""
    return patch_mask.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2).unsqueeze(1)


def mask_input(x: torch.Tensor, mask: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """Masked pixels (mask 1) of (n, C, H, W) replaced by the per-channel `token` (C,)."""
    return x * (1 - mask) + mask * token.view(1, -1, 1, 1)


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image: sum |prediction - target| over masked pixels / (masked pixels x C)."""
    channels = target.shape[1]
    error = (prediction - target).abs() * mask
    return error.sum(dim=(1, 2, 3)) / (mask.sum(dim=(1, 2, 3)) * channels).clamp(min=1e-5)


def decoder_for(feature_channels: int, stride: int, in_channels: int) -> nn.Module:
    """SimMIM's light decoder: 1x1 conv to stride² x C values per position, PixelShuffle(stride)."""
    return nn.Sequential(nn.Conv2d(feature_channels, stride**2 * in_channels, 1), nn.PixelShuffle(stride))


# --- the hook -----------------------------------------------------------------------------------


@register_method("mim", MIMConfig)
class MaskedImageModeling(Hook):
    """SimMIM on any ConvNet: mask, encode, decode, L1 on the masked pixels.

    Usage (a pretraining variant):  mim: {feature_layer: block2, mask_patch_size: 4, mask_ratio: 0.6}
    """

    compilable = False  # the feature map is kept by a forward hook on the model's layer

    def __init__(self, cfg: MIMConfig):
        self.cfg = cfg
        self.layer: nn.Module | None = None
        self.features: torch.Tensor | None = None
        self.decoder: nn.Module | None = None
        self.token: nn.Parameter | None = None
        self.grid = (0, 0)

    def _keep_features(self, module, args, output) -> None:
        if module is self.layer:  # not a copy of the model (a teacher, a key encoder)
            self.features = output

    def on_fit_start(self, state: TrainState) -> None:
        cfg, model = self.cfg, state.model
        channels, height, width = state.data.in_shape
        p = cfg.mask_patch_size
        if height % p or width % p:
            raise ConfigError(f"methods.mim.mask_patch_size: {p} does not divide the {height} x {width} images")
        self.grid = (height // p, width // p)
        self.layer = named_module(model, cfg.feature_layer, "methods.mim.feature_layer")
        self.layer.register_forward_hook(self._keep_features)
        features = self._feature_shape(state)
        stride = height // features[-2]
        if features[-2] * stride != height or features[-1] * stride != width:
            raise ConfigError(
                f"methods.mim.feature_layer: {cfg.feature_layer}'s {tuple(features[-2:])} map is not "
                f"the {height} x {width} input at an integer stride"
            )
        self.decoder = decoder_for(features[1], stride, channels).to(state.device)
        self.token = nn.Parameter(torch.zeros(channels, device=state.device), requires_grad=cfg.mask_token == "learned")
        state.optimizer.add_param_group({"params": list(self.decoder.parameters()), "lr_scale": 1.0})
        if cfg.mask_token == "learned":
            state.optimizer.add_param_group({"params": [self.token], "lr_scale": 1.0, "weight_decay": 0.0})
        self.loss_sum = torch.zeros((), device=state.device)
        self.seen = 0

    @torch.no_grad()
    def _feature_shape(self, state: TrainState) -> torch.Size:
        was_training = state.model.training
        state.model.eval()  # leave the BatchNorm statistics as they are
        run_model(state.model, torch.zeros(2, *state.data.in_shape, device=state.device), state.speed)
        state.model.train(was_training)
        shape = self.features.shape
        self.features = None
        if len(shape) != 4:
            raise ConfigError(f"methods.mim.feature_layer: {self.cfg.feature_layer} gives {tuple(shape)}, not a map")
        return shape

    def on_epoch_start(self, state: TrainState) -> None:
        self.loss_sum.zero_()
        self.seen = 0

    def transform_batch(self, state: TrainState, idx, x, y):
        generator = seeded_generator(state.seed, state.step, Stream.MASK)
        patches = random_patch_mask(len(x), self.grid, self.cfg.mask_ratio, generator)
        self.mask = pixel_mask(patches, self.cfg.mask_patch_size).to(x.device, x.dtype)
        self.target = state.pipeline.normalize(x).detach()  # SimMIM regresses the normalised image
        # The token lives in the network's input space: undo the normalisation it will meet.
        token = self.token
        if state.pipeline.mean is not None:
            token = token * state.pipeline.std.flatten() + state.pipeline.mean.flatten()
        return mask_input(x, self.mask, token.to(x.dtype)), y

    def loss(self, state: TrainState, idx, logits, y, loss):
        prediction = self.decoder(self.features)
        reconstruction = masked_l1(prediction.float(), self.target.float(), self.mask.float())
        self.loss_sum += reconstruction.detach().sum()
        self.seen += len(reconstruction)
        return reconstruction  # replaces the cross-entropy: pretraining reads no label

    def epoch_log(self, state: TrainState) -> dict:
        log = {"reconstruction_l1": self.loss_sum.item() / max(self.seen, 1)}
        if self.cfg.mask_token == "learned":
            log["mask_token"] = self.token.detach().cpu().tolist()
        return log

    def state_dict(self) -> dict[str, Any]:
        if self.decoder is None:
            return {}
        return {"decoder": self.decoder.state_dict(), "token": self.token.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.decoder.load_state_dict(state["decoder"])
            with torch.no_grad():
                self.token.copy_(state["token"])
