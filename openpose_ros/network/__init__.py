"""Lightweight OpenPose networks: MobileNet v1 (the published model), MobileNet v2 and ShuffleNet backbones.

- ``blocks``: convolution helpers, ``Cpm``, ``InitialStage``, ``RefinementStage``, ``PoseNetwork`` (shared)
- ``mobilenet``, ``mobilenet_v2``, ``shufflenet``: the backbones
- ``build``: ``build_network`` and ``network_stride``

``BACKBONES`` is defined here and the rest imported on first use, so that the parameter table and the
executables' parsers can name the backbones without importing torch.
"""
from openpose_ros.lazy import lazy_attributes

BACKBONES = ('mobilenet', 'mobilenetv2', 'shufflenet')

_LAZY = {
    'PoseNetwork': 'openpose_ros.network.blocks',
    'SHUFFLENET_GROUPS': 'openpose_ros.network.build',
    'build_network': 'openpose_ros.network.build',
    'network_stride': 'openpose_ros.network.build',
    'load_imagenet_backbone': 'openpose_ros.network.mobilenet',
}
__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = ['BACKBONES'] + list(_LAZY)
