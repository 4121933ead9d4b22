"""ONNX export of a pose network: the last stage's heatmaps and PAFs, dynamic batch, height and width."""
import copy
import warnings

import torch

from openpose_ros.files import atomic_path
from openpose_ros.runtime.backends import INPUT_NAME, OUTPUT_NAMES


class _LastStage(torch.nn.Module):
    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, image):
        outputs = self.network(image)
        return outputs[-2], outputs[-1]


def export_onnx(network, path, do_constant_folding=True, half=False, example_size=(256, 392), opset=17):
    """Writes `network` to `path` as ONNX (atomically). `half` exports fp16 weights and input (for CUDA)."""
    module = _LastStage(network).eval()
    device = next(network.parameters()).device
    example = torch.zeros(1, 3, *example_size, device=device)
    if half:  # on a copy: half() converts in place, and the caller's network must stay fp32
        module, example = copy.deepcopy(module).half(), example.half()
    dynamic = {0: 'batch', 2: 'height', 3: 'width'}
    with atomic_path(path) as temporary, warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, (example,), str(temporary), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          dynamic_axes={INPUT_NAME: dynamic, **{name: dynamic for name in OUTPUT_NAMES}},
                          do_constant_folding=do_constant_folding, opset_version=opset, dynamo=False)
    return path
