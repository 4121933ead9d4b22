"""The MobileNet v2 backbone (output stride 8) at a real input size, at several widths."""
import pytest
import torch

from openpose_ros.network.mobilenet_v2 import InvertedResidual, MobileNetV2, make_divisible

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_make_divisible_rounds_up_to_the_divisor():
    assert [make_divisible(v) for v in (8, 9, 16, 30.4, 1792)] == [8, 16, 16, 32, 1792]
    assert make_divisible(10, 4) == 12


@pytest.mark.parametrize('width, channels', [(0.5, 1280), (1.0, 1280), (1.4, 1792)])
def test_features_are_at_stride_8_with_the_last_width(width, channels):
    network = MobileNetV2(width).eval()
    assert network.out_channels == channels
    with torch.inference_mode():
        features = network(torch.rand(1, 3, 256, 344))
    assert features.shape == (1, channels, 32, 43)
    assert torch.isfinite(features).all() and (features >= 0).all() and (features <= 6).all()  # ReLU6


def test_blocks_keeping_their_shape_are_residual():
    network = MobileNetV2(1.0)
    blocks = [module for module in network.features if isinstance(module, InvertedResidual)]
    assert len(blocks) == 17  # 1 + 2 + 3 + 4 + 3 + 3 + 1
    assert sum(block.use_residual for block in blocks) == 10  # every repeat after a stage's first block
    block = InvertedResidual(24, 24, 1, 6).eval()
    x = torch.rand(1, 24, 8, 8)
    with torch.inference_mode():
        assert torch.allclose(block(x), x + block.conv(x))
