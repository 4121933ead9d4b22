"""Choosing and assembling a network from its options."""
import numbers

from openpose_ros.network.blocks import PoseNetwork
from openpose_ros.network.mobilenet import OUT_CHANNELS as MOBILENET_CHANNELS, mobilenet_v1
from openpose_ros.network.mobilenet_v2 import MobileNetV2
from openpose_ros.network.shufflenet import STAGE_CHANNELS, ShuffleNet

BACKBONES = ('mobilenet', 'mobilenetv2', 'shufflenet')
SHUFFLENET_GROUPS = tuple(sorted(STAGE_CHANNELS))


def _check_backbone(backbone):
    if backbone not in BACKBONES:
        raise ValueError(f'backbone must be one of {", ".join(map(repr, BACKBONES))}, not {backbone!r}')


def network_stride(backbone='mobilenet', mobilenet_use_stride=False):
    """Ratio of input size to output map size: 8, or 16 for ``mobilenet`` with ``mobilenet_use_stride``.

    ``mobilenet_use_stride`` means nothing for the other backbones (OpenDR ignores it too): they are always 8.
    """
    _check_backbone(backbone)
    return 16 if backbone == 'mobilenet' and mobilenet_use_stride else 8


def build_network(backbone='mobilenet', num_refinement_stages=1, mobilenet_use_stride=False, mobilenetv2_width=1.0,
                  shufflenet_groups=3):
    """Build a Lightweight OpenPose network (random weights, train mode).

    ``backbone`` is one of ``BACKBONES``. Options that belong to another backbone are ignored. The network's
    forward returns ``[heatmaps_0, pafs_0, ..., heatmaps_R, pafs_R]`` with R = ``num_refinement_stages``.
    """
    _check_backbone(backbone)
    if isinstance(num_refinement_stages, bool) or not isinstance(num_refinement_stages, numbers.Integral) \
            or num_refinement_stages < 0:
        raise ValueError(f'num_refinement_stages must be an integer >= 0, not {num_refinement_stages!r}')
    if backbone == 'mobilenet':
        model, channels = mobilenet_v1(bool(mobilenet_use_stride)), MOBILENET_CHANNELS
    elif backbone == 'mobilenetv2':
        if isinstance(mobilenetv2_width, bool) or not isinstance(mobilenetv2_width, numbers.Real) \
                or not mobilenetv2_width > 0:
            raise ValueError(f'mobilenetv2_width must be a number > 0, not {mobilenetv2_width!r}')
        model = MobileNetV2(float(mobilenetv2_width))
        channels = model.out_channels
    else:
        if isinstance(shufflenet_groups, bool) or shufflenet_groups not in SHUFFLENET_GROUPS:
            raise ValueError(f'shufflenet_groups must be one of {", ".join(map(str, SHUFFLENET_GROUPS))}, '
                             f'not {shufflenet_groups!r}')
        model = ShuffleNet(int(shufflenet_groups))
        channels = model.out_channels
    return PoseNetwork(model, channels, network_stride(backbone, mobilenet_use_stride), backbone,
                       int(num_refinement_stages))
