"""Lightweight OpenPose networks: MobileNet v1 (the published model), MobileNet v2 and ShuffleNet backbones.

- ``blocks``: convolution helpers, ``Cpm``, ``InitialStage``, ``RefinementStage``, ``PoseNetwork`` (shared)
- ``mobilenet``, ``mobilenet_v2``, ``shufflenet``: the backbones
- ``build``: ``build_network`` and ``network_stride``
"""
from openpose_ros.network.blocks import PoseNetwork
from openpose_ros.network.build import BACKBONES, SHUFFLENET_GROUPS, build_network, network_stride
from openpose_ros.network.mobilenet import load_imagenet_backbone

__all__ = ['BACKBONES', 'SHUFFLENET_GROUPS', 'PoseNetwork', 'build_network', 'load_imagenet_backbone',
           'network_stride']
