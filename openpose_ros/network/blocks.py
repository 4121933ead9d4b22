"""Building blocks shared by every backbone, and the Lightweight OpenPose heads.

The module trees (and so the parameter names) follow the reference implementation exactly: a
published checkpoint's state_dict loads into these modules unchanged.
"""
import torch
from torch import nn

from openpose_ros.keypoints import NUM_HEATMAPS, NUM_PAFS


def conv(in_channels, out_channels, kernel_size=3, padding=1, bn=True, dilation=1, stride=1, relu=True,
         bias=True, groups=1, activation=nn.ReLU):
    """Convolution, optional batch norm, optional activation, as one ``nn.Sequential`` (children 0, 1, 2)."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups=groups, bias=bias)]
    if bn:
        layers.append(nn.BatchNorm2d(out_channels))
    if relu:
        layers.append(activation(inplace=True))
    return nn.Sequential(*layers)


def conv_dw(in_channels, out_channels, stride=1, dilation=1, padding=1, bn=True, activation=nn.ReLU):
    """Depthwise 3x3 then pointwise 1x1 convolution, both without bias, flattened into one ``nn.Sequential``.

    With batch norm the children are conv, bn, act, conv, bn, act; without, conv, act, conv, act.
    """
    depthwise = conv(in_channels, in_channels, 3, padding, bn=bn, dilation=dilation, stride=stride, bias=False,
                     groups=in_channels, activation=activation)
    pointwise = conv(in_channels, out_channels, 1, 0, bn=bn, bias=False, activation=activation)
    return nn.Sequential(*depthwise, *pointwise)


def init_backbone_weights(network):
    """How the ImageNet backbones (MobileNet v2, ShuffleNet) start: He-normal convolutions over their fan-out,
    zero biases, batch norms that pass through (scale 1, shift 0)."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class Cpm(nn.Module):
    """Reduces the backbone's features to ``out_channels`` and refines them with a residual ELU trunk."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.align = conv(in_channels, out_channels, kernel_size=1, padding=0, bn=False)
        self.trunk = nn.Sequential(*(conv_dw(out_channels, out_channels, bn=False, activation=nn.ELU)
                                     for _ in range(3)))
        self.conv = conv(out_channels, out_channels, bn=False)

    def forward(self, x):
        x = self.align(x)
        return self.conv(x + self.trunk(x))


def _head(in_channels, hidden_channels, out_channels):
    return nn.Sequential(
        conv(in_channels, hidden_channels, kernel_size=1, padding=0, bn=False),
        conv(hidden_channels, out_channels, kernel_size=1, padding=0, bn=False, relu=False),
    )


class InitialStage(nn.Module):
    """Three 3x3 convolutions, then 1x1 heads for heatmaps and PAFs."""

    def __init__(self, num_channels, num_heatmaps=NUM_HEATMAPS, num_pafs=NUM_PAFS):
        super().__init__()
        self.trunk = nn.Sequential(*(conv(num_channels, num_channels, bn=False) for _ in range(3)))
        self.heatmaps = _head(num_channels, 512, num_heatmaps)
        self.pafs = _head(num_channels, 512, num_pafs)

    def forward(self, x):
        features = self.trunk(x)
        return [self.heatmaps(features), self.pafs(features)]


class RefinementStageBlock(nn.Module):
    """1x1 convolution, then a residual pair of 3x3 convolutions (the second dilated by 2)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.initial = conv(in_channels, out_channels, kernel_size=1, padding=0, bn=False)
        self.trunk = nn.Sequential(
            conv(out_channels, out_channels),
            conv(out_channels, out_channels, dilation=2, padding=2),
        )

    def forward(self, x):
        features = self.initial(x)
        return features + self.trunk(features)


class RefinementStage(nn.Module):
    """Five refinement blocks, then 1x1 heads for heatmaps and PAFs."""

    def __init__(self, in_channels, out_channels, num_heatmaps=NUM_HEATMAPS, num_pafs=NUM_PAFS):
        super().__init__()
        self.trunk = nn.Sequential(*(RefinementStageBlock(in_channels if i == 0 else out_channels, out_channels)
                                     for i in range(5)))
        self.heatmaps = _head(out_channels, out_channels, num_heatmaps)
        self.pafs = _head(out_channels, out_channels, num_pafs)

    def forward(self, x):
        features = self.trunk(x)
        return [self.heatmaps(features), self.pafs(features)]


class PoseNetwork(nn.Module):
    """A backbone (``model``), the ``cpm`` adapter, an ``initial_stage`` and ``refinement_stages``.

    ``forward`` returns ``[heatmaps_0, pafs_0, heatmaps_1, pafs_1, ...]``, one pair per stage, each map at
    ``1 / stride`` of the input size (rounded up). ``backbone`` and ``stride`` are plain attributes, not
    part of the state_dict.
    """

    def __init__(self, backbone, backbone_channels, stride, backbone_name, num_refinement_stages=1,
                 num_channels=128, num_heatmaps=NUM_HEATMAPS, num_pafs=NUM_PAFS):
        super().__init__()
        self.backbone = backbone_name
        self.stride = stride
        self.model = backbone
        self.cpm = Cpm(backbone_channels, num_channels)
        self.initial_stage = InitialStage(num_channels, num_heatmaps, num_pafs)
        self.refinement_stages = nn.ModuleList(
            RefinementStage(num_channels + num_heatmaps + num_pafs, num_channels, num_heatmaps, num_pafs)
            for _ in range(num_refinement_stages))

    @property
    def num_refinement_stages(self):
        """The number of refinement stages after the initial stage."""
        return len(self.refinement_stages)

    def forward(self, x):
        features = self.cpm(self.model(x))
        outputs = self.initial_stage(features)
        for stage in self.refinement_stages:
            outputs.extend(stage(torch.cat([features, outputs[-2], outputs[-1]], dim=1)))
        return outputs
