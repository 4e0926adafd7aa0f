"""CvT-13, the Convolutional vision Transformer (Wu et al., ICCV 2021), compact.

docs/methods.md §1.3 (HCL src/config/cvt_13_*_config.py = microsoft/CvT cvt-13-224x224;
LRC configs/cvt_configs.yaml): 3 stages; convolutional patch embedding (kernel 7/3/3,
stride 4/2/2, padding 2/1/1) + LayerNorm; embed dims 64/192/384; heads 1/3/6; depth 1/2/10;
MLP ratio 4; stochastic depth 0/0/0.1 (linear over a stage's blocks); qkv bias; a cls token
in the last stage only, classified from its final LayerNorm; no positional embedding;
q/k/v from a depthwise 3x3 conv + BatchNorm (stride 1 for q, 2 for k and v) followed by a
linear layer; trunc-normal init; GELU (HCL; LRC uses QuickGELU); LayerNorm eps 1e-5.
About 20 M parameters for 1000 classes.

No installable, maintained CvT exists for this torch (timm has none), so this is written
from the architecture above. Parameter names follow microsoft/CvT (stage{i}.patch_embed,
stage{i}.blocks.{j}.attn.conv_proj_q.conv, ..., stage2.cls_token, norm_final, head), so its
checkpoints load with `weights:` and LeRaC's block layout matches LRC's prefixes. As in
microsoft/CvT, attention scores are scaled by dim ** -0.5 (the stage width, not the head width).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import register_model

CVT13 = dict(
    patch_size=(7, 3, 3),
    patch_stride=(4, 2, 2),
    patch_padding=(2, 1, 1),
    dims=(64, 192, 384),
    heads=(1, 3, 6),
    depths=(1, 2, 10),
    mlp_ratio=4.0,
    drop_path=(0.0, 0.0, 0.1),
    cls_token=(False, False, True),
)


class ConvEmbed(nn.Module):
    """Overlapping conv patch embedding, then LayerNorm over channels."""

    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, C, H, W)


class ConvProjection(nn.Sequential):
    """Depthwise conv + BatchNorm on the token map (CvT's "dw_bn" q/k/v projection)."""

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, stride=stride, padding=1, bias=False, groups=dim)
        self.bn = nn.BatchNorm2d(dim)


class ConvAttention(nn.Module):
    def __init__(self, dim: int, heads: int, with_cls_token: bool, kv_stride: int = 2):
        super().__init__()
        self.heads, self.with_cls_token = heads, with_cls_token
        self.scale = dim**-0.5  # microsoft/CvT: the stage width, not the head width
        self.conv_proj_q = ConvProjection(dim, 1)
        self.conv_proj_k = ConvProjection(dim, kv_stride)
        self.conv_proj_v = ConvProjection(dim, kv_stride)
        self.proj_q = nn.Linear(dim, dim, bias=True)
        self.proj_k = nn.Linear(dim, dim, bias=True)
        self.proj_v = nn.Linear(dim, dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        cls = None
        if self.with_cls_token:
            cls, x = x[:, :1], x[:, 1:]
        grid = x.transpose(1, 2).reshape(b, c, h, w)

        def tokens(proj: ConvProjection, linear: nn.Linear) -> torch.Tensor:
            t = proj(grid).flatten(2).transpose(1, 2)
            if cls is not None:
                t = torch.cat((cls, t), 1)
            return linear(t).view(b, -1, self.heads, c // self.heads).transpose(1, 2)

        q = tokens(self.conv_proj_q, self.proj_q)
        k = tokens(self.conv_proj_k, self.proj_k)
        v = tokens(self.conv_proj_v, self.proj_v)
        attn = F.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, -1, c)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def stochastic_depth(p: float) -> nn.Module:
    # Imported here: importing torchvision costs a job about a second, and most runs train other models.
    from torchvision.ops import StochasticDepth

    return StochasticDepth(p, "row")


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path: float, with_cls_token: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = ConvAttention(dim, heads, with_cls_token)
        self.drop_path = stochastic_depth(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Stage(nn.Module):
    def __init__(
        self,
        in_channels: int,
        dim: int,
        heads: int,
        depth: int,
        kernel: int,
        stride: int,
        padding: int,
        mlp_ratio: float,
        drop_path: float,
        with_cls_token: bool,
    ):
        super().__init__()
        self.patch_embed = ConvEmbed(in_channels, dim, kernel, stride, padding)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if with_cls_token else None
        rates = torch.linspace(0, drop_path, depth).tolist()  # stochastic depth grows with depth
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, r, with_cls_token) for r in rates)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.patch_embed(x)
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            tokens = torch.cat((self.cls_token.expand(b, -1, -1), tokens), 1)
        for block in self.blocks:
            tokens = block(tokens, h, w)
        cls = None
        if self.cls_token is not None:
            cls, tokens = tokens[:, 0], tokens[:, 1:]
        return tokens.transpose(1, 2).reshape(b, c, h, w), cls


class CvT(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, spec: dict = CVT13):
        super().__init__()
        self.num_stages = len(spec["dims"])
        channels = in_channels
        for i in range(self.num_stages):
            setattr(
                self,
                f"stage{i}",
                Stage(
                    channels,
                    spec["dims"][i],
                    spec["heads"][i],
                    spec["depths"][i],
                    spec["patch_size"][i],
                    spec["patch_stride"][i],
                    spec["patch_padding"][i],
                    spec["mlp_ratio"],
                    spec["drop_path"][i],
                    spec["cls_token"][i],
                ),
            )
            channels = spec["dims"][i]
        self.norm_final = nn.LayerNorm(channels, eps=1e-5)
        self.head = nn.Linear(channels, num_classes)
        self.apply(_init_weights)
        for i in range(self.num_stages):
            token = getattr(self, f"stage{i}").cls_token
            if token is not None:
                nn.init.trunc_normal_(token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = None
        for i in range(self.num_stages):
            x, cls = getattr(self, f"stage{i}")(x)
        return self.head(self.norm_final(cls))


def _init_weights(m: nn.Module) -> None:
    """microsoft/CvT trunc_norm init: Linear weights N(0, 0.02) truncated, biases 0; norms 1/0."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


@register_model("cvt13")
def cvt13(in_shape, num_classes: int) -> nn.Module:
    return CvT(in_shape[0], num_classes)
