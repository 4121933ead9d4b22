"""`LightweightOpenPoseLearner`: OpenDR's learner API over this package's pieces (a thin facade)."""
import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import torch

from openpose_ros import download as downloads
from openpose_ros.backends import TorchBackend
from openpose_ros.checkpoints import WeightsMismatchError, extract_state_dict, load_state_strictly, read_checkpoint
from openpose_ros.decode import DecoderConfig
from openpose_ros.estimator import PoseEstimator
from openpose_ros.export import export_onnx
from openpose_ros.files import atomic_path
from openpose_ros.network import BACKBONES, build_network, network_stride
from openpose_ros.openvino_backend import runtime_backend
from openpose_ros.smoothing import PoseSmoother
from openpose_ros.tracking import PoseTracker

LOG = logging.getLogger(__name__)
FORMAT_VERSION = 1
DEFAULT_SCALES = (0.5, 1.0, 1.5, 2.0)
NETWORK_OPTIONS = ('backbone', 'num_refinement_stages', 'mobilenet_use_stride', 'mobilenetv2_width',
                   'shufflenet_groups')
PREPROCESSING_OPTIONS = ('base_height', 'img_mean', 'img_scale', 'pad_value')


def resolve_device(device):
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
    """

    def __init__(self, lr=4e-5, epochs=280, batch_size=80, device='auto', backbone='mobilenet', lr_schedule='',
                 temp_path='temp', checkpoint_after_iter=5000, checkpoint_load_iter=0, val_after=5000, log_after=100,
                 mobilenet_use_stride=False, mobilenetv2_width=1.0, shufflenet_groups=3, num_refinement_stages=1,
                 batches_per_iter=1, experiment_name='default', num_workers=8, weights_only=True,
                 output_name='detections.json', multiscale=False, scales=None, visualize=False, base_height=256,
                 img_mean=(128, 128, 128), img_scale=1 / 256, pad_value=(0, 0, 0), half_precision=False):
        if backbone not in BACKBONES:
            raise ValueError(f'backbone must be one of {", ".join(BACKBONES)}, not {backbone!r}')
        for name, value in (('lr', lr), ('epochs', epochs), ('batch_size', batch_size),
                            ('batches_per_iter', batches_per_iter), ('base_height', base_height)):
            if not value > 0:
                raise ValueError(f'{name} must be > 0, got {value}')
        if num_workers < 0 or checkpoint_load_iter < 0:
            raise ValueError('num_workers and checkpoint_load_iter must be >= 0')
        self.lr, self.epochs, self.batch_size, self.lr_schedule = lr, epochs, batch_size, lr_schedule
        self.device = resolve_device(device)
        self.temp_path = Path(temp_path)
        self.checkpoint_after_iter, self.checkpoint_load_iter = checkpoint_after_iter, checkpoint_load_iter
        self.val_after, self.log_after, self.batches_per_iter = val_after, log_after, batches_per_iter
        self.experiment_name, self.num_workers, self.weights_only = experiment_name, num_workers, weights_only
        self.output_name, self.visualize = output_name, visualize
        self.multiscale = multiscale
        self.scales = tuple(scales) if scales else (DEFAULT_SCALES if multiscale else (1.0,))
        self.backbone, self.num_refinement_stages = backbone, num_refinement_stages
        self.mobilenet_use_stride, self.mobilenetv2_width = mobilenet_use_stride, mobilenetv2_width
        self.shufflenet_groups = shufflenet_groups
        self.base_height, self.img_mean, self.img_scale, self.pad_value = base_height, img_mean, img_scale, pad_value
        self.half_precision = half_precision
        if half_precision and not self.device.startswith('cuda'):
            LOG.warning('half_precision needs CUDA; running in fp32 on %s', self.device)
            self.half_precision = False
        self.model = self._build_network()
        self.ort_session = None  # set by optimize()/load() of an ONNX model, as in OpenDR
        self.decoder = DecoderConfig()
        self.tracker = PoseTracker()
        self.smoother = PoseSmoother()
        self._estimator = None

    # --- configuration ---------------------------------------------------------------------------------
    @property
    def stride(self):
        return network_stride(self.backbone, self.mobilenet_use_stride)

    def _build_network(self):
        return build_network(**{name: getattr(self, name) for name in NETWORK_OPTIONS})

    def set_thresholds(self, **thresholds):
        """Changes decoder thresholds (see DecoderConfig), e.g. set_thresholds(peak_threshold=0.2); validated."""
        self.decoder = replace(self.decoder, **thresholds)
        if self._estimator is not None:
            self._estimator.decoder = self.decoder

    @property
    def estimator(self):
        """The inference pipeline on the current backend (built on first use)."""
        if self._estimator is None:
            backend = (self.ort_session if self.ort_session is not None
                       else TorchBackend(self.model, self.device, self.half_precision))
            scales = sorted(self.scales, key=lambda s: abs(math.log(s)))  # the scale nearest 1 sets the grid
            self._estimator = PoseEstimator(
                backend, self.stride, self.base_height, self.img_mean, self.img_scale, self.pad_value, scales,
                self.decoder, self.tracker, self.smoother)
        return self._estimator

    def _invalidate(self):
        self._estimator = None

    # --- inference -------------------------------------------------------------------------------------
    def infer(self, img, upsample_ratio=4, track=True, smooth=True, stamp=None):
        """Poses of the people in `img` (numpy BGR/gray/BGRA array or `Image`), in its pixel coordinates.

        `stamp` (seconds) is the image's capture time, used by tracking and smoothing; by default the clock.
        """
        return self.estimator.estimate(img, upsample_ratio, track, smooth, stamp)

    def reset(self):
        """Starts a new stream: forgets track ids and smoothing state."""
        self.tracker.reset()
        self.smoother.reset()

    # --- training and evaluation -----------------------------------------------------------------------
    def fit(self, dataset, val_dataset=None, logging_path='', logging_flush_secs=30, silent=False, verbose=True,
            epochs=None, use_val_subset=True, val_subset_size=250, images_folder_name='train2017',
            annotations_filename='person_keypoints_train2017.json', val_images_folder_name='val2017',
            val_annotations_filename='person_keypoints_val2017.json'):
        """Trains the network on `dataset` (ExternalDataset of type COCO, or a dataset of training samples);
        validates on `val_dataset` every val_after iterations. Returns the last validation stats ({} without).
        Data-parallel when launched by torchrun. See openpose_ros.training."""
        from openpose_ros import training
        result = training.fit(self, dataset, val_dataset, logging_path, logging_flush_secs, silent, verbose, epochs,
                              use_val_subset, val_subset_size, images_folder_name, annotations_filename,
                              val_images_folder_name, val_annotations_filename)
        self._invalidate()
        return result.stats

    def eval(self, dataset, silent=False, verbose=True, use_subset=True, subset_size=250,
             images_folder_name='val2017', annotations_filename='person_keypoints_val2017.json'):
        """COCO keypoint evaluation over the dataset's images; writes the detections to temp_path/output_name
        and returns {'AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl'}."""
        from openpose_ros.evaluating import evaluate
        return evaluate(self, dataset, silent, verbose, use_subset, subset_size, images_folder_name,
                        annotations_filename)

    # --- persistence -----------------------------------------------------------------------------------
    def save(self, path, verbose=False):
        """Writes the folder `path` with name.pth, name.json (and name.onnx after optimize()), atomically.

        A failure leaves any model already at `path` untouched.
        """
        path = Path(path)
        name = path.name
        with atomic_path(path) as folder:
            folder.mkdir()
            torch.save({'state_dict': self.model.state_dict()}, folder / f'{name}.pth')
            if self.ort_session is not None:
                export_onnx(self.model, folder / f'{name}.onnx', half=self.half_precision)
            metadata = self._metadata(name, optimized=self.ort_session is not None)
            (folder / f'{name}.json').write_text(json.dumps(metadata, indent=2))
        if verbose:
            print(f'saved {path}')
        return path

    def _metadata(self, name, optimized):
        return {
            'model_paths': [f'{name}.onnx' if optimized else f'{name}.pth'],
            'framework': 'pytorch',
            'format': 'onnx' if optimized else 'pth',
            'has_data': False,
            'optimized': optimized,
            'optimizer_info': {},
            'inference_params': {},
            'backbone': self.backbone,
            'network': {option: getattr(self, option) for option in NETWORK_OPTIONS},
            'preprocessing': {option: getattr(self, option) for option in PREPROCESSING_OPTIONS},
            'weights': f'{name}.pth',
            'onnx': f'{name}.onnx' if optimized else None,
            'runtime': getattr(self.ort_session, 'runtime', None),  # the runtime load() runs it on again
            'format_version': FORMAT_VERSION,
        }

    def load(self, path, verbose=False):
        """Loads a saved folder, the original checkpoint file (dict with 'state_dict') or a bare state_dict file.

        Loading is strict: a file that does not fit raises WeightsMismatchError naming the parameters, and the
        current model stays as it was.
        """
        path = Path(path)
        if path.is_dir():
            self._load_folder(path)
        else:
            load_state_strictly(self.model, extract_state_dict(read_checkpoint(path)))
            self.ort_session = None
        self._invalidate()
        if verbose:
            print(f'loaded {path}')
        return self

    def _load_folder(self, folder):
        metadata_path = folder / f'{folder.name}.json'
        if not metadata_path.is_file():
            raise FileNotFoundError(f'{folder} is not a saved model: {metadata_path.name} is missing')
        try:
            metadata = json.loads(metadata_path.read_text())
            network_options = {option: metadata['network'][option] for option in NETWORK_OPTIONS}
            preprocessing = {option: metadata['preprocessing'][option] for option in PREPROCESSING_OPTIONS}
            weights = folder / metadata['weights']
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f'{metadata_path} is not valid model metadata ({error!r})') from error
        network = build_network(**network_options)
        try:
            load_state_strictly(network, extract_state_dict(read_checkpoint(weights)))
        except WeightsMismatchError as error:
            raise WeightsMismatchError(f'{weights}: {error}') from error
        onnx = metadata.get('onnx')
        session = runtime_backend(folder / onnx, self.device, metadata.get('runtime')) if onnx else None
        # Everything read and checked: only now does the learner change.
        for option, value in {**network_options, **preprocessing}.items():
            setattr(self, option, tuple(value) if isinstance(value, list) else value)
        self.model, self.ort_session = network, session

    # --- acceleration ----------------------------------------------------------------------------------
    def optimize(self, do_constant_folding=False, quantize=False, calibration_images=None, backend=None,
                 precision='auto', openvino_device='CPU'):
        """Exports the network to ONNX (dynamic height and width); inference then runs on ONNX Runtime, or on
        OpenVINO with backend='openvino' in `precision` 'auto' (bf16 where the device has native bf16, else
        fp32), 'fp32' or 'bf16' on `openvino_device` (CPU, GPU, NPU).

        With `quantize`, runs a statically quantised int8 model instead, calibrated on `calibration_images`
        (paths, a folder or BGR arrays; default: the real images of the data folder), see openpose_ros.quantize.
        """
        if backend not in (None, 'onnxruntime', 'openvino'):
            raise ValueError(f"backend must be None (ONNX Runtime), 'onnxruntime' or 'openvino', not {backend!r}")
        path = export_onnx(self.model.eval(), self.temp_path / 'onnx_model_temp.onnx', do_constant_folding,
                           half=self.half_precision)
        if quantize:
            from openpose_ros.quantize import quantize_learner
            path = quantize_learner(self, path, calibration_images)
        runtime = {'backend': backend, 'precision': precision, 'device': openvino_device} if backend else None
        self.ort_session = runtime_backend(path, self.device, runtime)
        self._invalidate()
        return path

    # --- data ------------------------------------------------------------------------------------------
    def download(self, path=None, mode='pretrained', verbose=False, url=None):
        """Fetches 'pretrained' (the published model), 'weights' (ImageNet MobileNet) or 'test_data' into `path`
        (default: temp_path). Offline, raises DownloadError saying how to provide the file instead."""
        return downloads.download(path or self.temp_path, mode, verbose, url)
