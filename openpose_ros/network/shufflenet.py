"""ShuffleNet (v1) backbone as OpenDR adapts it: the stem keeps full resolution (stride-1 convolution and
max pooling), so the three stages bring the output stride to 8."""
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from openpose_ros.network.blocks import init_backbone_weights

# Output channels of the stem and of stages 2, 3, 4, for each number of groups.
STAGE_CHANNELS = {
    1: (24, 144, 288, 576),
    2: (24, 200, 400, 800),
    3: (24, 240, 480, 960),
    4: (24, 272, 544, 1088),
    8: (24, 384, 768, 1536),
}
_STAGE_REPEATS = (3, 7, 3)


def channel_shuffle(x, groups):
    """Interleave the channels of ``groups`` groups (N, G*C, H, W) -> (N, C*G, H, W); shape-agnostic."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


def _grouped_conv1x1(in_channels, out_channels, groups, relu):
    layers = OrderedDict(conv1x1=nn.Conv2d(in_channels, out_channels, kernel_size=1, groups=groups),
                         batch_norm=nn.BatchNorm2d(out_channels))
    if relu:
        layers['relu'] = nn.ReLU()
    return nn.Sequential(layers)


class ShuffleUnit(nn.Module):
    """Grouped 1x1 compression, channel shuffle, depthwise 3x3, grouped 1x1 expansion.

    ``combine='add'``: residual sum, stride 1. ``combine='concat'``: stride 2, the input is average-pooled and
    concatenated, so the branch produces ``out_channels - in_channels`` channels.
    """

    def __init__(self, in_channels, out_channels, groups=3, grouped_conv=True, combine='add'):
        super().__init__()
        if combine not in ('add', 'concat'):
            raise ValueError(f"combine must be 'add' or 'concat', not {combine!r}")
        self.groups = groups
        self.combine = combine
        bottleneck = out_channels // 4
        if combine == 'concat':
            out_channels -= in_channels
        self.g_conv_1x1_compress = _grouped_conv1x1(in_channels, bottleneck, groups if grouped_conv else 1, True)
        self.depthwise_conv3x3 = nn.Conv2d(bottleneck, bottleneck, kernel_size=3, padding=1,
                                           stride=2 if combine == 'concat' else 1, groups=bottleneck)
        self.bn_after_depthwise = nn.BatchNorm2d(bottleneck)
        self.g_conv_1x1_expand = _grouped_conv1x1(bottleneck, out_channels, groups, False)

    def forward(self, x):
        out = channel_shuffle(self.g_conv_1x1_compress(x), self.groups)
        out = self.g_conv_1x1_expand(self.bn_after_depthwise(self.depthwise_conv3x3(out)))
        if self.combine == 'concat':
            out = torch.cat((F.avg_pool2d(x, kernel_size=3, stride=2, padding=1), out), 1)
        else:
            out = x + out
        return F.relu(out)


class ShuffleNet(nn.Module):
    """ShuffleNet v1 with ``groups`` in 1, 2, 3, 4, 8 (names ``conv1``, ``stage2.ShuffleUnit_Stage2_0`` ...)."""

    def __init__(self, groups=3, in_channels=3):
        super().__init__()
        if groups not in STAGE_CHANNELS:
            raise ValueError(f'shufflenet_groups must be one of {sorted(STAGE_CHANNELS)}, not {groups!r}')
        self.groups = groups
        channels = STAGE_CHANNELS[groups]
        self.out_channels = channels[-1]
        self.conv1 = nn.Conv2d(in_channels, channels[0], kernel_size=3, stride=1, padding=1)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        for index, repeats in enumerate(_STAGE_REPEATS):
            stage = index + 2
            prefix = f'ShuffleUnit_Stage{stage}_'
            units = OrderedDict()
            # The first unit halves the resolution; stage 2's first compression is not grouped (too few inputs).
            units[prefix + '0'] = ShuffleUnit(channels[index], channels[index + 1], groups,
                                              grouped_conv=stage > 2, combine='concat')
            for i in range(1, repeats + 1):
                units[prefix + str(i)] = ShuffleUnit(channels[index + 1], channels[index + 1], groups)
            setattr(self, f'stage{stage}', nn.Sequential(units))
        init_backbone_weights(self)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        return self.stage4(self.stage3(self.stage2(x)))
