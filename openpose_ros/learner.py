"""`LightweightOpenPoseLearner`: OpenDR's learner API over this package's pieces (a thin facade)."""
import json
import logging
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openpose_ros.files import atomic_path, file_sha256, named_target, write_text
from openpose_ros.inference.decode import DecoderConfig
from openpose_ros.inference.estimator import PoseEstimator
from openpose_ros.inference.image import ImageLike
from openpose_ros.inference.pipeline import PoseStream, StreamSettings
from openpose_ros.inference.preprocess import (DEFAULT_MAX_ASPECT_RATIO, ChannelValues, check_base_height,
                                               check_max_aspect_ratio)
from openpose_ros.network import build_network, network_stride
from openpose_ros.pose import Pose
from openpose_ros.runtime.backends import DEFAULT_DEVICE, DEFAULT_OPENVINO_DEVICE, Backend, TorchBackend
from openpose_ros.runtime.checkpoints import extract_state_dict, load_state_strictly, read_checkpoint
from openpose_ros.runtime import download as downloads
from openpose_ros.runtime.export import export_onnx
from openpose_ros.runtime.openvino import runtime_backend
from openpose_ros.runtime.quantize import QUANTIZED_SUFFIX
from openpose_ros.runtime import saved_model
from openpose_ros.tracking.smoothing import PoseSmoother
from openpose_ros.tracking.tracker import PoseTracker

LOG = logging.getLogger(__name__)
DEFAULT_SCALES = (0.5, 1.0, 1.5, 2.0)
NETWORK_OPTIONS = ('backbone', 'num_refinement_stages', 'mobilenet_use_stride', 'mobilenetv2_width',
                   'shufflenet_groups')
PREPROCESSING_OPTIONS = ('base_height', 'img_mean', 'img_scale', 'pad_value')
DEFAULT_TEMP_PATH = 'temp'
PathLike = str | os.PathLike[str]
# What optimize(quantize=True) calibrates on: image paths, a folder of images, or BGR arrays.
CalibrationImages = PathLike | Iterable[PathLike | np.ndarray]


class NoWeightsError(RuntimeError):
    """infer() or eval() on a network whose weights were never loaded or trained: random weights find nobody."""


def check_preprocessing(base_height: Any, img_mean: Any, img_scale: Any, pad_value: Any) -> dict[str, Any]:
    """The pre-processing options, checked (ValueError naming the option) and with sequences as tuples."""
    check_base_height(base_height)
    if not _is_finite_number(img_scale) or not img_scale > 0:
        raise ValueError(f'img_scale must be a finite number > 0, not {img_scale!r}')
    return dict(base_height=base_height, img_mean=_channel_values('img_mean', img_mean), img_scale=img_scale,
                pad_value=_channel_values('pad_value', pad_value))


def _channel_values(name: str, value: Any) -> ChannelValues:
    """One finite number for all channels, or three (B, G, R) as a tuple."""
    if _is_finite_number(value):
        return value
    values = tuple(value) if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict)) else ()
    if len(values) != 3 or not all(_is_finite_number(v) for v in values):
        raise ValueError(f'{name} must be a finite number or three of them (B, G, R), not {value!r}')
    return values


def _is_finite_number(value: object) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float: no use as a pixel value or scale
        return False


def resolve_device(device: str | torch.device) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; a CUDA device that is not there is an error."""
    device = str(device)
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} was asked for but CUDA is not available; use device="cpu" or "auto"')
    if device != 'cpu' and not device.startswith('cuda'):
        raise ValueError(f'device must be "auto", "cpu" or "cuda[:N]", not {device!r}')
    return device


class LightweightOpenPoseLearner:
    """Multi-person 2D pose estimation with Lightweight OpenPose: inference, training, evaluation, export.

    The parameters are OpenDR's. Two defaults differ, for the published model and its accuracy: one refinement
    stage and stride 8 (`mobilenet_use_stride=False`); and `device='auto'` picks CUDA only where there is one.
    `temp_path` (default 'temp') is where training and eval write; optimize() writes its ONNX model there only
    when it is given, else into a private temporary folder removed with the learner. One parameter is added:
    `max_aspect_ratio`, beyond which images are refused (openpose_ros.inference.preprocess).

    A new learner's network has random weights: infer() and eval() refuse them (NoWeightsError) until load()
    or fit(), or allow_random_weights() for tests and timing.
    """

    # Set from the checked pre-processing options (check_preprocessing), by the constructor and load().
    base_height: int
    img_mean: ChannelValues
    img_scale: float
    pad_value: ChannelValues

    def __init__(self, lr: float = 4e-5, epochs: int = 280, batch_size: int = 80, device: str = DEFAULT_DEVICE,
                 backbone: str = 'mobilenet', lr_schedule: str = '', temp_path: PathLike | None = None,
                 checkpoint_after_iter: int = 5000, checkpoint_load_iter: int = 0, val_after: int = 5000,
                 log_after: int = 100, mobilenet_use_stride: bool = False, mobilenetv2_width: float = 1.0,
                 shufflenet_groups: int = 3, num_refinement_stages: int = 1, batches_per_iter: int = 1,
                 experiment_name: str = 'default', num_workers: int = 8, weights_only: bool = True,
                 output_name: str = 'detections.json', multiscale: bool = False,
                 scales: Sequence[float] | None = None, visualize: bool = False, base_height: int = 256,
                 img_mean: ChannelValues = (128, 128, 128), img_scale: float = 1 / 256,
                 pad_value: ChannelValues = (0, 0, 0), half_precision: bool = False,
                 max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO) -> None:
        for name, value in (('lr', lr), ('epochs', epochs), ('batch_size', batch_size),
                            ('batches_per_iter', batches_per_iter)):
            if not value > 0:
                raise ValueError(f'{name} must be > 0, got {value}')
        if num_workers < 0 or checkpoint_load_iter < 0:
            raise ValueError('num_workers and checkpoint_load_iter must be >= 0')
        self.lr, self.epochs, self.batch_size, self.lr_schedule = lr, epochs, batch_size, lr_schedule
        self.device = resolve_device(device)
        preprocessing = check_preprocessing(base_height, img_mean, img_scale, pad_value)
        self.temp_path = Path(DEFAULT_TEMP_PATH if temp_path is None else temp_path)
        self._temp_path_given = temp_path is not None
        # optimize()'s private folder when no temp_path was given
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.checkpoint_after_iter, self.checkpoint_load_iter = checkpoint_after_iter, checkpoint_load_iter
        self.val_after, self.log_after, self.batches_per_iter = val_after, log_after, batches_per_iter
        self.experiment_name, self.num_workers, self.weights_only = experiment_name, num_workers, weights_only
        self.output_name, self.visualize = output_name, visualize
        self.multiscale = multiscale
        self.scales = tuple(scales) if scales else (DEFAULT_SCALES if multiscale else (1.0,))
        self.backbone, self.num_refinement_stages = backbone, num_refinement_stages
        self.mobilenet_use_stride, self.mobilenetv2_width = mobilenet_use_stride, mobilenetv2_width
        self.shufflenet_groups = shufflenet_groups
        for option, value in preprocessing.items():
            setattr(self, option, value)
        self.half_precision = half_precision
        self._max_aspect_ratio = check_max_aspect_ratio(max_aspect_ratio)
        if half_precision and not self.device.startswith('cuda'):
            LOG.warning('half_precision needs CUDA; running in fp32 on %s', self.device)
            self.half_precision = False
        self.model = self._build_network()
        self.ort_session: Backend | None = None  # set by optimize()/load() of an ONNX model, as in OpenDR
        self._weights_meant = False  # loaded, trained or random on purpose (allow_random_weights)
        self._exported_session: Backend | None = None  # the session optimize() made from self.model
        self.decoder = DecoderConfig()
        self.tracker = PoseTracker()
        self.smoother = PoseSmoother()
        self._estimator: PoseEstimator | None = None
        self._stream: PoseStream | None = None

    # --- configuration ---------------------------------------------------------------------------------
    @property
    def stride(self) -> int:
        """The network's output stride (input pixels per map pixel): 8, or 16 for mobilenet with
        mobilenet_use_stride."""
        return network_stride(self.backbone, self.mobilenet_use_stride)

    def _build_network(self) -> torch.nn.Module:
        return build_network(**{name: getattr(self, name) for name in NETWORK_OPTIONS})

    def set_thresholds(self, **thresholds: Any) -> None:
        """Changes decoder thresholds (see DecoderConfig), e.g. set_thresholds(peak_threshold=0.2); validated."""
        self.decoder = replace(self.decoder, **thresholds)
        if self._estimator is not None:
            self._estimator.decoder = self.decoder

    @property
    def max_aspect_ratio(self) -> float:
        """Images whose longer side exceeds this many times the shorter one raise image.ImageRejected."""
        return self._max_aspect_ratio

    @max_aspect_ratio.setter
    def max_aspect_ratio(self, value: float) -> None:
        self._max_aspect_ratio = check_max_aspect_ratio(value)
        if self._estimator is not None:
            self._estimator.max_aspect_ratio = self._max_aspect_ratio

    @property
    def estimator(self) -> PoseEstimator:
        """The inference pipeline on the current backend (built on first use)."""
        if self._estimator is None:
            backend = (self.ort_session if self.ort_session is not None
                       else TorchBackend(self.model, self.device, self.half_precision))
            scales = sorted(self.scales, key=lambda s: abs(math.log(s)))  # the scale nearest 1 sets the grid
            self._estimator = PoseEstimator(
                backend, self.stride, self.base_height, self.img_mean, self.img_scale, self.pad_value, scales,
                self.decoder, self._max_aspect_ratio)
            if self._stream is not None:
                self._stream.estimator = self._estimator
        return self._estimator

    @property
    def stream(self) -> PoseStream:
        """The per-frame pipeline of infer(): detection on the current backend, then tracking and smoothing."""
        if self._stream is None:
            self._stream = PoseStream(self.estimator, self.tracker, self.smoother)
        return self._stream

    def _invalidate(self) -> None:
        self._estimator = None

    # --- inference -------------------------------------------------------------------------------------
    def infer(self, img: ImageLike, upsample_ratio: int = 4, track: bool = True, smooth: bool = True,
              stamp: float | None = None) -> list[Pose]:
        """Poses of the people in `img` (numpy BGR/gray/BGRA array or `Image`), in its pixel coordinates.

        `stamp` (seconds) is the image's capture time, used by tracking and smoothing; by default the clock. A
        NaN or infinite stamp is refused (ValueError).
        """
        self._require_weights('infer')
        return self.stream.process(img, stamp, StreamSettings(upsample_ratio, track, smooth)).poses

    def allow_random_weights(self) -> 'LightweightOpenPoseLearner':
        """Lets infer() and eval() run the network's untrained weights, on purpose (tests, timing); returns self."""
        self._weights_meant = True
        return self

    def _runs_random_weights(self) -> bool:
        return not self._weights_meant and self.ort_session in (None, self._exported_session)

    def _require_weights(self, action: str) -> None:
        if self._runs_random_weights():
            raise NoWeightsError(
                f'{action}() on random weights: this learner never loaded or trained any. Call load(<saved model '
                f'folder or checkpoint>) (download() fetches the published model) or fit() first; '
                f'allow_random_weights() runs untrained weights on purpose')

    def _warn_if_random_weights(self, action: str) -> None:
        if self._runs_random_weights():
            LOG.warning('%s() on random weights: this learner never loaded or trained any', action)

    def reset(self) -> None:
        """Starts a new stream: forgets track ids and smoothing state."""
        self.stream.reset()

    # --- training and evaluation -----------------------------------------------------------------------
    def fit(self, dataset: Any, val_dataset: Any = None, logging_path: str = '', logging_flush_secs: int = 30,
            silent: bool = False, verbose: bool = True, epochs: int | None = None, use_val_subset: bool = True,
            val_subset_size: int = 250, images_folder_name: str = 'train2017',
            annotations_filename: str = 'person_keypoints_train2017.json', val_images_folder_name: str = 'val2017',
            val_annotations_filename: str = 'person_keypoints_val2017.json') -> dict[str, float]:
        """Trains the network on `dataset` (ExternalDataset of type COCO, or a dataset of training samples);
        validates on `val_dataset` every val_after iterations. Returns the last validation stats ({} without).
        Data-parallel when launched by torchrun. See openpose_ros.training.trainer."""
        from openpose_ros.training.trainer import TrainingOptions, fit
        options = TrainingOptions(
            logging_path=logging_path, logging_flush_secs=logging_flush_secs, silent=silent, verbose=verbose,
            epochs=epochs, use_val_subset=use_val_subset, val_subset_size=val_subset_size,
            images_folder_name=images_folder_name, annotations_filename=annotations_filename,
            val_images_folder_name=val_images_folder_name, val_annotations_filename=val_annotations_filename)
        result = fit(self, dataset, val_dataset, options)
        self._weights_meant = True
        self._invalidate()
        return result.stats

    def eval(self, dataset: Any, silent: bool = False, verbose: bool = True, use_subset: bool = True,
             subset_size: int = 250, images_folder_name: str = 'val2017',
             annotations_filename: str = 'person_keypoints_val2017.json') -> dict[str, float]:
        """COCO keypoint evaluation over the dataset's images; writes the detections to temp_path/output_name
        and returns {'AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl'}."""
        from openpose_ros.evaluation.learner_eval import evaluate
        self._require_weights('eval')
        return evaluate(self, dataset, silent, verbose, use_subset, subset_size, images_folder_name,
                        annotations_filename)

    # --- persistence -----------------------------------------------------------------------------------
    def save(self, path: PathLike, verbose: bool = False) -> Path:
        """Writes this model's files into the folder `path` (made if needed), named after it: name.pth, name.json
        and, when ONNX Runtime runs (after optimize()), name.onnx, plus name.int8.onnx for an int8 model.

        Each file is replaced atomically, the json last, with the SHA-256 of each weight file. Other files in the
        folder are left alone; this model's ONNX files that this save does not write are removed (they would
        not match the new weights). A path that is a file, or without a final name ('.', '/'), is refused.
        """
        folder = named_target(path)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f'{folder} is a file; save() writes a model folder: give the path of a folder')
        self._warn_if_random_weights('save')
        names = saved_model.file_names(folder.name)
        folder.mkdir(parents=True, exist_ok=True)
        checksums = {names['weights']: _write_file(
            folder / names['weights'], lambda temporary: torch.save({'state_dict': self.model.state_dict()},
                                                                    temporary))}
        if self.ort_session is not None:
            checksums[names['onnx']] = _write_file(
                folder / names['onnx'], lambda temporary: export_onnx(self.model, temporary, half=self.half_precision))
            quantized = getattr(self.ort_session, 'path', None)
            if quantized is not None and str(quantized).endswith(QUANTIZED_SUFFIX):
                checksums[names['int8']] = _write_file(
                    folder / names['int8'], lambda temporary: shutil.copyfile(quantized, temporary))
        for stale in (names['onnx'], names['int8']):
            if stale not in checksums:
                (folder / stale).unlink(missing_ok=True)
        write_text(saved_model.metadata_path(folder), json.dumps(self._metadata(names, checksums), indent=2))
        if verbose:
            print(f'saved {folder}')
        return folder

    def _metadata(self, names: dict[str, str], checksums: dict[str, str]) -> dict[str, Any]:
        optimized = names['onnx'] in checksums
        return {
            'model_paths': [names['onnx'] if optimized else names['weights']],
            'framework': 'pytorch',
            'format': 'onnx' if optimized else 'pth',
            'has_data': False,
            'optimized': optimized,
            'optimizer_info': {},
            'inference_params': {},
            'backbone': self.backbone,
            'network': {option: getattr(self, option) for option in NETWORK_OPTIONS},
            'preprocessing': {option: getattr(self, option) for option in PREPROCESSING_OPTIONS},
            'weights': names['weights'],
            'onnx': names['onnx'] if optimized else None,
            'int8': names['int8'] if names['int8'] in checksums else None,
            'runtime': getattr(self.ort_session, 'runtime', None) if optimized else None,  # what load() runs again
            'sha256': checksums,
            'format_version': saved_model.FORMAT_VERSION,
        }

    def load(self, path: PathLike, verbose: bool = False) -> 'LightweightOpenPoseLearner':
        """Loads a saved folder, the original checkpoint file (dict with 'state_dict') or a bare state_dict file.

        Loading is strict: a file that does not fit raises WeightsMismatchError naming the parameters; NaN or
        infinite weights, metadata out of the constructor's ranges, files that fail their checksum or lie outside
        the folder raise ValueError. The current model stays as it was.
        """
        path = Path(path)
        if path.is_dir():
            self._load_folder(path)
        else:
            load_state_strictly(self.model, extract_state_dict(read_checkpoint(path)))
            self.ort_session = None
        self._weights_meant = True
        self._invalidate()
        if verbose:
            print(f'loaded {path}')
        return self

    def _load_folder(self, folder: Path) -> None:
        saved = saved_model.read_saved_model(folder)
        metadata_path = saved_model.metadata_path(folder)
        try:
            network_options = {option: saved.metadata['network'][option] for option in NETWORK_OPTIONS}
            preprocessing = {option: saved.metadata['preprocessing'][option] for option in PREPROCESSING_OPTIONS}
        except (KeyError, TypeError, IndexError) as error:
            raise ValueError(f'{metadata_path} is not valid model metadata (no {error})') from error
        try:  # before anything is allocated: the options decide the network's size
            preprocessing = check_preprocessing(**preprocessing)
            network = build_network(**network_options)
        except ValueError as error:
            raise ValueError(f'{metadata_path}: {error}') from error
        weights = saved.verified(saved.weights)
        checkpoint = read_checkpoint(weights)
        try:
            load_state_strictly(network, extract_state_dict(checkpoint))
        except ValueError as error:
            raise type(error)(f'{weights}: {error}') from error
        session = self._runtime_session(saved) if saved.onnx else None
        # Everything read and checked: only now does the learner change.
        for option, value in {**network_options, **preprocessing}.items():
            setattr(self, option, value)
        self.model, self.ort_session = network, session

    def _runtime_session(self, saved: saved_model.SavedModel) -> Backend:
        """The saved ONNX model on the runtime its metadata records (ONNX Runtime, or OpenVINO at a precision),
        each file it may run checked against its checksum first."""
        path, runtime = saved.verified(saved.onnx), saved.runtime
        if saved.int8 is not None:
            saved.verified(saved.int8)
        try:
            return runtime_backend(path, self.device, runtime)
        except Exception as error:  # the runtimes raise their own types for files that are not ONNX models
            raise ValueError(f'{path} is not a usable ONNX model ({type(error).__name__}: {error})') from error

    # --- acceleration ----------------------------------------------------------------------------------
    def optimize(self, do_constant_folding: bool = False, quantize: bool = False,
                 calibration_images: CalibrationImages | None = None, backend: str | None = None,
                 precision: str = 'auto', openvino_device: str = DEFAULT_OPENVINO_DEVICE) -> Path:
        """Exports the network to ONNX (dynamic height and width); inference then runs on ONNX Runtime, or on
        OpenVINO with backend='openvino' in `precision` 'auto' (bf16 where the device has native bf16, else
        fp32), 'fp32' or 'bf16' on `openvino_device` (CPU, GPU, NPU).

        The ONNX model goes to temp_path when the constructor was given one, else to a private temporary folder
        removed with the learner. With `quantize`, runs a statically quantised int8 model instead, calibrated on
        `calibration_images` (paths, a folder or BGR arrays; default: the real images of the data folder), see
        openpose_ros.runtime.quantize.
        """
        self._warn_if_random_weights('optimize')
        if backend not in (None, 'onnxruntime', 'openvino'):
            raise ValueError(f"backend must be None (ONNX Runtime), 'onnxruntime' or 'openvino', not {backend!r}")
        path = export_onnx(self.model.eval(), self._scratch_folder() / 'onnx_model_temp.onnx', do_constant_folding,
                           half=self.half_precision)
        if quantize:
            from openpose_ros.runtime.quantize import quantize_learner
            path = quantize_learner(self, path, calibration_images)
        runtime = {'backend': backend, 'precision': precision, 'device': openvino_device} if backend else None
        self.ort_session = runtime_backend(path, self.device, runtime)
        self._exported_session = self.ort_session
        self._invalidate()
        return path

    def _scratch_folder(self) -> Path:
        if self._temp_path_given:
            return self.temp_path
        if self._scratch is None:  # removed when the learner is collected, or at exit
            self._scratch = tempfile.TemporaryDirectory(prefix='openpose-ros-onnx-')
        return Path(self._scratch.name)

    # --- data ------------------------------------------------------------------------------------------
    def download(self, path: PathLike | None = None, mode: str = 'pretrained', verbose: bool = False,
                 url: str | None = None) -> Path:
        """Fetches 'pretrained' (the published model), 'weights' (ImageNet MobileNet) or 'test_data' into `path`
        (default: temp_path). Offline, raises DownloadError saying how to provide the file instead."""
        return downloads.download(path or self.temp_path, mode, verbose, url)


def _write_file(path: Path, write: Callable[[Path], object]) -> str:
    """write(temporary) under atomic_path(path); returns the SHA-256 of what was written."""
    with atomic_path(path) as temporary:
        write(temporary)
        return file_sha256(temporary)
