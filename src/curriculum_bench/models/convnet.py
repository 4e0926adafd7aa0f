"""The small residual ConvNet of the MNIST training-technique catalogue.

docs/methods.md §2.1 (MLT:models/ConvNet.py): two residual blocks, 1->32 (stride 1) and
32->64 (stride 2), each followed by a channel dropout whose p a curriculum may change
(0 by default), then Flatten and one Linear layer. About 192 K parameters on 28x28 input.

`input_dropout` / `fc_dropout` add an element-wise dropout on the input image and before the
linear layer (off by default, so the MLT network is unchanged): the Curriculum Dropout
paper schedules input, conv and fc layers with their own targets (docs/methods.md §2.3).

`global_pool` averages the last block's 64 channels over space before the Linear layer (off by
default). As SimCLR's encoder (docs/methods.md §3.1) it makes h the pooled 64-d vector a ResNet's
h is, rather than MLT's flattened 64 x 14 x 14 map, on which a linear probe of even an untrained
network scores near a trained one on MNIST, so the probe would say little about pretraining.
"""

from __future__ import annotations

from torch import nn

from . import register_model


class ResBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus a skip (1x1 conv when the shape changes).

    MLT applies one BatchNorm module after both convolutions of a block (shared affine
    parameters and running statistics); `share_bn=True` keeps that quirk.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, share_bn: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = self.bn1 if share_bn else nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        else:
            self.skip = nn.Identity()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.skip(x))


@register_model("mlt_convnet")  # the constructor is the registered builder: one signature
class MLTConvNet(nn.Module):
    def __init__(
        self,
        in_shape,
        num_classes: int,
        share_bn: bool = True,
        input_dropout: bool = False,
        fc_dropout: bool = False,
        global_pool: bool = False,
    ):
        super().__init__()
        channels, height, width = in_shape
        # Identity when off: no extra module state, no RNG draws, MLT's network exactly.
        self.drop_in = nn.Dropout(p=0.0) if input_dropout else nn.Identity()
        self.block1 = ResBlock(channels, 32, stride=1, share_bn=share_bn)
        self.drop1 = nn.Dropout2d(p=0.0)  # MLT DynamicDropout: p set by a curriculum
        self.block2 = ResBlock(32, 64, stride=2, share_bn=share_bn)
        self.drop2 = nn.Dropout2d(p=0.0)
        self.pool = nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity()
        self.flatten = nn.Flatten()
        self.drop_fc = nn.Dropout(p=0.0) if fc_dropout else nn.Identity()
        spatial = 1 if global_pool else ((height + 1) // 2) * ((width + 1) // 2)
        self.fc = nn.Linear(64 * spatial, num_classes)

    def forward(self, x):
        x = self.drop1(self.block1(self.drop_in(x)))
        x = self.drop2(self.block2(x))
        return self.fc(self.drop_fc(self.flatten(self.pool(x))))

    def dropout_layers(self) -> dict[str, list[nn.Module]]:
        """The dropout modules a dropout curriculum may drive, by layer kind."""
        kinds = {"input": [self.drop_in], "conv": [self.drop1, self.drop2], "fc": [self.drop_fc]}
        return {k: [m for m in mods if isinstance(m, nn.modules.dropout._DropoutNd)] for k, mods in kinds.items()}
