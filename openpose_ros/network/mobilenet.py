"""MobileNet v1 backbone (the published Lightweight OpenPose model) and its ImageNet initialisation."""
from collections.abc import Mapping

import torch
from torch import nn

from openpose_ros.network.blocks import conv, conv_dw

OUT_CHANNELS = 512


def mobilenet_v1(use_stride=False):
    """MobileNet v1 up to conv5_5, output stride 8 (conv4_2 keeps stride 1, conv5_1 is dilated).

    ``use_stride`` gives the second block a stride of 2, so the output stride becomes 16; no parameter
    shape changes, so the same weights load either way.
    """
    return nn.Sequential(
        conv(3, 32, stride=2, bias=False),
        conv_dw(32, 64, stride=2 if use_stride else 1),
        conv_dw(64, 128, stride=2),
        conv_dw(128, 128),
        conv_dw(128, 256, stride=2),
        conv_dw(256, 256),
        conv_dw(256, 512),  # conv4_2
        conv_dw(512, 512, dilation=2, padding=2),
        conv_dw(512, 512),
        conv_dw(512, 512),
        conv_dw(512, 512),
        conv_dw(512, 512),  # conv5_5
    )


def load_imagenet_backbone(network, checkpoint_state_dict):
    """Copy ImageNet MobileNet v1 weights (``mobilenet_sgd_68.848.pth.tar``) into ``network.model``.

    ``checkpoint_state_dict`` is that file's dict (its ``state_dict`` entry is used) or the state_dict itself.
    Its ``module.model.*`` entries (saved from ``DataParallel``) fill ``model.*``; plain ``model.*`` names are
    accepted too. An entry is used only where the shape matches. Every other tensor of the network keeps its
    value.

    Returns the names of the network's state_dict entries that found no match, in state_dict order; the
    heads (``cpm``, ``initial_stage``, ``refinement_stages``) are always among them, since an ImageNet
    checkpoint has none.
    """
    source = checkpoint_state_dict
    if isinstance(source.get('state_dict'), Mapping):
        source = source['state_dict']
    target = network.state_dict()
    missing = []
    for name, value in target.items():
        candidates = ('module.' + name, name) if name.startswith('model.') else ()
        match = next((source[key] for key in candidates
                      if isinstance(source.get(key), torch.Tensor) and source[key].shape == value.shape), None)
        if match is None:
            missing.append(name)
        else:
            target[name] = match
    network.load_state_dict(target)
    return missing
