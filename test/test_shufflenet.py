"""ShuffleNet's channel shuffle (openpose_ros.network.shufflenet)."""
import torch

from openpose_ros.network.shufflenet import channel_shuffle


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1).expand(2, 6, 3, 4)
    assert channel_shuffle(x, 3)[1, :, 2, 3].tolist() == [0, 2, 4, 1, 3, 5]
    assert channel_shuffle(x, 2)[0, :, 0, 0].tolist() == [0, 3, 1, 4, 2, 5]
