"""Choosing and assembling a network from its options."""
import numbers

from openpose_ros.network import BACKBONES
from openpose_ros.network.blocks import PoseNetwork
from openpose_ros.network.mobilenet import OUT_CHANNELS as MOBILENET_CHANNELS, mobilenet_v1
from openpose_ros.network.mobilenet_v2 import MobileNetV2
from openpose_ros.network.shufflenet import STAGE_CHANNELS, ShuffleNet

SHUFFLENET_GROUPS = tuple(sorted(STAGE_CHANNELS))
# Upper bounds, so that options read from a file cannot ask for gigabytes: the original OpenPose has 5
# refinement stages; MobileNet v2 is published up to width 1.4.
MAX_REFINEMENT_STAGES = 5
MAX_MOBILENETV2_WIDTH = 2.0


def _check_backbone(backbone):
    if backbone not in BACKBONES:
        raise ValueError(f'backbone must be one of {", ".join(map(repr, BACKBONES))}, not {backbone!r}')


def network_stride(backbone='mobilenet', mobilenet_use_stride=False):
    """Ratio of input size to output map size: 8, or 16 for ``mobilenet`` with ``mobilenet_use_stride``.

    ``mobilenet_use_stride`` means nothing for the other backbones (OpenDR ignores it too): they are always 8.
    """
    _check_backbone(backbone)
    return 16 if backbone == 'mobilenet' and mobilenet_use_stride else 8


def check_network_options(backbone, num_refinement_stages, mobilenet_use_stride, mobilenetv2_width,
                          shufflenet_groups):
    """Raises ValueError naming the first option out of its range (all are checked, whatever the backbone)."""
    _check_backbone(backbone)
    if not _is_integer(num_refinement_stages) or not 0 <= num_refinement_stages <= MAX_REFINEMENT_STAGES:
        raise ValueError(f'num_refinement_stages must be an integer in [0, {MAX_REFINEMENT_STAGES}], '
                         f'not {num_refinement_stages!r}')
    if not isinstance(mobilenet_use_stride, bool):
        raise ValueError(f'mobilenet_use_stride must be true or false, not {mobilenet_use_stride!r}')
    if isinstance(mobilenetv2_width, bool) or not isinstance(mobilenetv2_width, numbers.Real) \
            or not 0 < mobilenetv2_width <= MAX_MOBILENETV2_WIDTH:
        raise ValueError(f'mobilenetv2_width must be a number in (0, {MAX_MOBILENETV2_WIDTH:g}], '
                         f'not {mobilenetv2_width!r}')
    if not _is_integer(shufflenet_groups) or shufflenet_groups not in SHUFFLENET_GROUPS:
        raise ValueError(f'shufflenet_groups must be one of {", ".join(map(str, SHUFFLENET_GROUPS))}, '
                         f'not {shufflenet_groups!r}')


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def build_network(backbone='mobilenet', num_refinement_stages=1, mobilenet_use_stride=False, mobilenetv2_width=1.0,
                  shufflenet_groups=3):
    """Build a Lightweight OpenPose network (random weights, train mode).

    ``backbone`` is one of ``BACKBONES``. Options that belong to another backbone are ignored. The network's
    forward returns ``[heatmaps_0, pafs_0, ..., heatmaps_R, pafs_R]`` with R = ``num_refinement_stages``.
    Every option is checked (ValueError) before anything is allocated.
    """
    check_network_options(backbone, num_refinement_stages, mobilenet_use_stride, mobilenetv2_width, shufflenet_groups)
    if backbone == 'mobilenet':
        model, channels = mobilenet_v1(mobilenet_use_stride), MOBILENET_CHANNELS
    elif backbone == 'mobilenetv2':
        model = MobileNetV2(float(mobilenetv2_width))
        channels = model.out_channels
    else:
        model = ShuffleNet(int(shufflenet_groups))
        channels = model.out_channels
    return PoseNetwork(model, channels, network_stride(backbone, mobilenet_use_stride), backbone,
                       int(num_refinement_stages))
