"""Static int8 quantisation of an exported pose network.

`quantize_onnx` turns an fp32 ONNX model into a QDQ model (ONNX Runtime's `quantize_static`: per-channel int8
weights, uint8 activations, opset >= 13) whose activation ranges are calibrated on real images passed through
this package's own pre-processing at the deployed base height. What quantisation costs against the fp32 model
is measured by openpose_ros.evaluation.agreement.compare_backends.

Needs onnx and onnxruntime, never torch.
"""
import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openpose_ros.files import atomic_path
from openpose_ros.formats.media import DATA_VARIABLE, default_data_root, folder_images, is_image_file
from openpose_ros.inference.image import read_pixels, to_bgr8
from openpose_ros.inference.preprocess import prepare

QUANTIZED_SUFFIX = '.int8.onnx'
DEFAULT_CALIBRATION_COUNT = 64
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear need the axis attribute of opset 13
METHODS = ('minmax', 'percentile', 'entropy')


def quantized_path(onnx_path):
    """Where the int8 twin of an fp32 model lives: model.onnx -> model.int8.onnx."""
    onnx_path = Path(onnx_path)
    name = onnx_path.name[:-len('.onnx')] if onnx_path.name.endswith('.onnx') else onnx_path.name
    return onnx_path.with_name(name + QUANTIZED_SUFFIX)


def default_calibration_images(limit=DEFAULT_CALIBRATION_COUNT, root=None):
    """Real photos for calibration: COCO val/train images with and without people and the other photos of the
    data folder, spread evenly over the sorted list. Raises FileNotFoundError when there is no data folder."""
    root = Path(root) if root else default_data_root()
    if root is None:
        raise FileNotFoundError(f'no calibration images: pass calibration_images=<folder or image paths>, or set '
                                f'{DATA_VARIABLE} to a folder of real images')
    paths = sorted(path for pattern in ('coco/coco-mini/val2017/*', 'coco/coco-mini/train2017/*',
                                        'coco/mmpose-tests/*', 'images/*')
                   for path in root.glob(pattern) if is_image_file(path))
    if not paths:
        raise FileNotFoundError(f'no images under {root}; pass calibration_images explicitly')
    if limit and len(paths) > limit:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]
    return paths


def image_paths(source):
    """An image file, a folder of images (sorted, not recursive) or an iterable of paths -> list of Paths."""
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
        if source.is_dir():
            return folder_images(source)
        return [source]
    return [Path(p) for p in source]


def load_images(source, limit=None):
    """Calibration images as 8-bit BGR arrays: from paths (see `image_paths`) or arrays; None = the default set;
    at most `limit`, evenly spread.

    Unreadable files raise ValueError naming the file: calibrating on fewer images than asked would be silent.
    """
    if source is None:
        source = default_calibration_images()
    if isinstance(source, np.ndarray):
        source = [source]
    items = source if isinstance(source, (list, tuple)) and source and isinstance(source[0], np.ndarray) \
        else image_paths(source)
    if limit and len(items) > limit:  # spread over the whole set, not its first files
        items = [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]
    images = []
    for item in items:
        if isinstance(item, np.ndarray):
            images.append(to_bgr8(item))
            continue
        images.append(to_bgr8(read_pixels(item)))
    if not images:
        raise ValueError('no calibration images')
    return images


@dataclass(frozen=True)
class Preprocessing:
    """What the deployed pipeline feeds the network: base height, stride and normalisation."""
    base_height: int = 256
    stride: int = 8
    img_mean: tuple = (128, 128, 128)
    img_scale: float = 1 / 256
    pad_value: tuple = (0, 0, 0)

    def batch(self, image_bgr):
        """The network input (1, 3, H, W) float32 of a BGR image, as the deployed pipeline prepares it."""
        return prepare(image_bgr, self.base_height, self.stride, self.img_mean, self.img_scale, self.pad_value)[0]


def _calibration_reader(images, preprocessing, input_name, same_size=False):
    """Feeds the calibrator the network inputs of `images`. With `same_size` (the histogram calibrators stack
    their inputs) every input is padded on the right to the widest one, with the pad value, as letterboxing
    pads."""
    from onnxruntime.quantization import CalibrationDataReader
    batches = [preprocessing.batch(image) for image in images]
    if same_size:
        width = max(batch.shape[3] for batch in batches)
        pad = np.asarray(preprocessing.pad_value, np.float32)[None, :, None, None]
        batches = [np.concatenate([b, np.broadcast_to(pad, b.shape[:3] + (width - b.shape[3],))], axis=3)
                   for b in batches]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(batches)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    return Reader()


def cpu_has_vnni():
    """Whether this x86 CPU has VNNI (u8 x s8 dot products without intermediate saturation)."""
    try:
        flags = Path('/proc/cpuinfo').read_text()
    except OSError:
        return False
    return 'avx512_vnni' in flags or 'avx_vnni' in flags


def quantize_onnx(fp32_path, int8_path=None, calibration_images=None, preprocessing=Preprocessing(),
                  method='minmax', per_channel=True, reduce_range=None, calibration_count=None,
                  fp32_output_layers=True):
    """Writes a statically quantised QDQ model of the fp32 ONNX model `fp32_path` and returns its path.

    calibration_images: paths, a folder, BGR arrays, or None for `default_calibration_images()`; each goes
    through the package's pre-processing (`preprocessing`, at the deployed base height); at most
    `calibration_count` (default DEFAULT_CALIBRATION_COUNT) of them, spread over the set. Weights are int8
    per output channel, activations uint8 (the fast kernels on x86). reduce_range (7-bit weights) defaults to
    on only for x86 CPUs without VNNI, where u8 x s8 products can saturate. The file is written atomically.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ValueError(f'method must be one of {METHODS}, got {method!r}')
    fp32_path = Path(fp32_path)
    int8_path = Path(int8_path) if int8_path else quantized_path(fp32_path)
    model = onnx.load(str(fp32_path), load_external_data=False)
    opset = max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), default=0)
    if opset < MIN_OPSET:
        raise ValueError(f'{fp32_path} has opset {opset}; per-channel quantisation needs opset >= {MIN_OPSET} '
                         f'(export with opset={MIN_OPSET} or later)')
    input_name = model.graph.input[0].name
    del model
    images = load_images(calibration_images, calibration_count or DEFAULT_CALIBRATION_COUNT)
    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    calibrate_method = {'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile,
                        'entropy': CalibrationMethod.Entropy}[method]
    with (atomic_path(int8_path) as written,
          tempfile.TemporaryDirectory(prefix='.quantize.', dir=int8_path.parent) as work):
        prepared = Path(work) / 'prepared.onnx'
        # Shape inference and graph fusions (batch norms into convolutions) before inserting Q/DQ pairs.
        quant_pre_process(str(fp32_path), str(prepared))
        reader = _calibration_reader(images, preprocessing, input_name, same_size=method != 'minmax')
        excluded = output_layers(prepared) if fp32_output_layers else []
        # ONNX Runtime's calibrators print their progress: stdout belongs to the caller (JSON, pipes).
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(str(prepared), str(written), reader, nodes_to_exclude=excluded,
                            quant_format=QuantFormat.QDQ, per_channel=per_channel, reduce_range=reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=calibrate_method)
    return int8_path


def output_layers(path):
    """Names of the nodes that write the model's outputs (the last 1x1 convolutions of the heatmap and PAF
    heads): a tiny share of the work, and where 8-bit steps would land directly on the maps."""
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    outputs = {output.name for output in model.graph.output}
    return [node.name for node in model.graph.node if set(node.output) & outputs]


def quantize_learner(learner, fp32_path, calibration_images=None, **options):
    """int8 model of a learner's exported fp32 model, calibrated at the learner's own pre-processing."""
    preprocessing = Preprocessing(learner.base_height, learner.stride, tuple(learner.img_mean), learner.img_scale,
                                  tuple(learner.pad_value))
    return quantize_onnx(fp32_path, quantized_path(fp32_path), calibration_images, preprocessing, **options)
