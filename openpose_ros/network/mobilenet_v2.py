"""MobileNet v2 backbone as OpenDR adapts it: output stride 8 (the 4th and 6th stages keep stride 1)."""
import math

from torch import nn

from openpose_ros.network.blocks import conv, init_backbone_weights

# expansion t, output channels c, repeats n, first stride s
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 1),  # stride 2 in the classifier
    (6, 96, 3, 1),
    (6, 160, 3, 1),  # stride 2 in the classifier
    (6, 320, 1, 1),
)
_FIRST_CHANNELS = 32
_LAST_CHANNELS = 1280


def make_divisible(value, divisor=8):
    """Round ``value`` up to a multiple of ``divisor``."""
    return int(math.ceil(value / divisor) * divisor)


def _conv_bn(in_channels, out_channels, kernel_size=1, stride=1, groups=1, relu=True):
    return conv(in_channels, out_channels, kernel_size, kernel_size // 2, stride=stride, bias=False, groups=groups,
                relu=relu, activation=nn.ReLU6)


class InvertedResidual(nn.Module):
    """Pointwise expansion (skipped when ``expand_ratio`` is 1), depthwise 3x3, linear pointwise projection;
    residual when the shape is kept. The layers are the flat children of ``conv``."""

    def __init__(self, in_channels, out_channels, stride, expand_ratio):
        super().__init__()
        hidden = int(in_channels * expand_ratio)
        self.use_residual = stride == 1 and in_channels == out_channels
        layers = []
        if expand_ratio != 1:
            layers += _conv_bn(in_channels, hidden)
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += _conv_bn(hidden, out_channels, relu=False)
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNet v2 features with width multiplier ``width_mult`` (the first block and, up to width 1, the
    last 1x1 convolution keep their channel counts, as in OpenDR)."""

    def __init__(self, width_mult=1.0):
        super().__init__()
        self.out_channels = make_divisible(_LAST_CHANNELS * width_mult) if width_mult > 1.0 else _LAST_CHANNELS
        channels = _FIRST_CHANNELS
        layers = [_conv_bn(3, channels, 3, stride=2)]
        for t, c, n, s in _SETTINGS:
            out_channels = make_divisible(c * width_mult) if t > 1 else c
            for i in range(n):
                layers.append(InvertedResidual(channels, out_channels, s if i == 0 else 1, t))
                channels = out_channels
        layers.append(_conv_bn(channels, self.out_channels))
        self.features = nn.Sequential(*layers)
        init_backbone_weights(self)

    def forward(self, x):
        return self.features(x)
