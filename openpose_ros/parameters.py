"""The parameters of pose_estimation_node, as data: one table that the node, the launch files, the README and
the tests all read.

Each `Param` has a default (whose Python type is the ROS parameter type), a description, its allowed values
(an inclusive range, whose ends may be excluded, or a list of choices) and whether it can change while the node
runs (`dynamic`). The others are read-only: they are set at start (command line, parameter file, launch file).

Free of rclpy: `check()` says why a value is refused, and the node turns the table into ParameterDescriptors.
"""
import inspect
import math
import re
from dataclasses import dataclass

from openpose_ros.inference.decode import DecoderConfig
from openpose_ros.inference.preprocess import BASE_HEIGHT_RANGE, DEFAULT_MAX_ASPECT_RATIO, MAX_ASPECT_RATIO_RANGE
from openpose_ros.network import BACKBONES
from openpose_ros.runtime.backends import DEFAULT_DEVICE, DEFAULT_OPENVINO_DEVICE
from openpose_ros.runtime.loading import DOWNLOAD
from openpose_ros.runtime.openvino import PRECISIONS
from openpose_ros.runtime.selection import BACKEND_CHOICES
from openpose_ros.tracking.smoothing import OneEuroSettings
from openpose_ros.tracking.tracker import PoseTracker

_DECODER = DecoderConfig()
_ONE_EURO = OneEuroSettings()
_TRACKER = {name: parameter.default for name, parameter in inspect.signature(PoseTracker).parameters.items()}

# Where the node's default differs from the library's, and why.
DIFFERS_FROM_LIBRARY = {
    # The reference's 3, not DecoderConfig's 2: 2-keypoint fragments are noise on a pose topic (the test model on
    # 40 moving frames of two photos: 81 fragment poses with 2, 15 with 3; the people's ids are stable with both).
    'min_keypoints': 3,
}

INPUT_TYPES = ('raw', 'compressed')
RELIABILITY_CHOICES = ('best_effort', 'reliable')
_DEVICE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')


@dataclass(frozen=True)
class Param:
    """One ROS parameter of the node."""
    name: str
    default: object
    description: str
    group: str
    dynamic: bool = False
    low: float = None            # inclusive lower bound, unless low_excluded
    high: float = None           # inclusive upper bound
    low_excluded: bool = False
    choices: tuple = ()
    pattern: str = None          # a regular expression a string must match (with a word for it in `constraints`)
    pattern_words: str = ''

    @property
    def type(self):
        """The Python type of the value: bool, int, float or str."""
        return type(self.default)

    @property
    def type_name(self):
        """The ROS parameter type's name: 'bool', 'int', 'double' or 'string'."""
        return {bool: 'bool', int: 'int', float: 'double', str: 'string'}[self.type]

    @property
    def constraints(self):
        """The allowed values in words ('' for any value of the type)."""
        if self.choices:
            return 'one of: ' + ', '.join(self.choices)
        if self.pattern_words:
            return self.pattern_words
        if self.low is not None and self.high is not None:
            return f'{"(" if self.low_excluded else "["}{self.low:g}, {self.high:g}]'
        return ''

    def convert(self, value):
        """`value` (accepted by check) in the parameter's own type: a whole number for a double as a float."""
        return float(value) if self.type is float else value

    def check(self, value):
        """None when `value` is allowed, else the reason it is refused (a sentence for the user)."""
        # bool is an int in Python: compare types exactly; a double also takes a whole number (`:=0`)
        if type(value) is not self.type and not (self.type is float and type(value) is int):
            return f'{self.name} must be a {self.type_name}, got {type(value).__name__} {value!r}'
        if self.type is float and not math.isfinite(value):
            return f'{self.name} must be a finite number, got {value!r}'
        if self.choices and value not in self.choices:
            return f'{self.name} must be one of {", ".join(self.choices)}, got {value!r}'
        if self.pattern and not re.match(self.pattern, value):
            return f'{self.name} must be {self.pattern_words}, got {value!r}'
        if self.low is not None:
            if value < self.low or (self.low_excluded and value == self.low) or value > self.high:
                return f'{self.name} must be in {self.constraints}, got {value!r}'
        return None


PARAMS = (
    # --- model: read at start ----------------------------------------------------------------------------
    Param('weights', DOWNLOAD,
          "The model: a folder written by learner.save(), a checkpoint file (.pth, e.g. the published "
          "checkpoint_iter_370000.pth), or 'download' to fetch the published model into download_dir "
          "(needs internet, or OPENPOSE_ROS_MIRROR pointing at a mirror).", 'model'),
    Param('download_dir', '',
          "Where weights:=download keeps the model; '' = $XDG_CACHE_HOME/openpose_ros (~/.cache/openpose_ros).",
          'model'),
    Param('device', DEFAULT_DEVICE, "'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'.", 'model',
          pattern=_DEVICE.pattern, pattern_words="auto, cpu, cuda or cuda:N"),
    Param('backend', 'auto',
          "Network runtime: 'auto' takes the fastest available (int8 when a quantised <name>.int8.onnx is in "
          "the model folder, on OpenVINO when installed; else OpenVINO at `precision`; on CUDA, or without "
          "OpenVINO, ONNX Runtime, else torch); 'openvino' (OpenVINO at `precision`), 'onnx' (exported at start "
          "when the folder has no .onnx), 'int8' (ONNX Runtime; quantised at start when there is none: slow) or "
          "'torch'.", 'model', choices=BACKEND_CHOICES),
    Param('precision', 'auto',
          "OpenVINO precision (backends auto and openvino): 'auto' runs int8 when a quantised model is there, "
          "else bf16 where the device has native bf16 (same accuracy as fp32, about twice as fast), else fp32; "
          "'fp32'; 'bf16' (fp32, with a warning, where the device has no native bf16).", 'model',
          choices=PRECISIONS),
    Param('openvino_device', DEFAULT_OPENVINO_DEVICE,
          "OpenVINO device: 'CPU', or an Intel 'GPU' or 'NPU' (passed through to OpenVINO; untested here).",
          'model', pattern=r'^[A-Z][A-Z0-9_.:,]*$', pattern_words='an OpenVINO device name, e.g. CPU, GPU, NPU'),
    Param('backbone', 'mobilenet',
          'Network of a checkpoint file (a saved folder names its own).', 'model', choices=BACKBONES),
    Param('num_refinement_stages', -1,
          'Refinement stages of a checkpoint file; -1 = read from the checkpoint (a saved folder names its own).',
          'model', low=-1, high=5),
    Param('mobilenet_use_stride', False,
          'MobileNet with output stride 16 instead of 8 (OpenDR option; faster, less accurate) for a checkpoint '
          'file.', 'model'),
    Param('base_height', 0,
          "Network input height in pixels (the image is scaled to it); 0 = the model's own (256 for the "
          "published model). Larger finds smaller people and costs time quadratically.", 'model',
          low=0, high=BASE_HEIGHT_RANGE[1]),
    Param('half_precision', False, 'fp16 inference (CUDA only; ignored with a warning on CPU).', 'model'),
    Param('autostart', True,
          'Configure and activate the lifecycle node at start. false: it waits, unconfigured, for lifecycle '
          'transitions (e.g. from a lifecycle manager).', 'model'),
    # --- input: read at start ----------------------------------------------------------------------------
    Param('input_type', 'raw',
          "'raw': sensor_msgs/Image on 'image'; 'compressed': sensor_msgs/CompressedImage (JPEG/PNG) on "
          "'<image>/compressed' (image_transport's name: remap 'image' to the camera's base topic).", 'input',
          choices=INPUT_TYPES),
    Param('qos_reliability', 'best_effort',
          "Reliability of the image subscription: 'best_effort' (REP-2003 sensor data; connects to both kinds "
          "of publisher) or 'reliable' (only reliable publishers).", 'input', choices=RELIABILITY_CHOICES),
    Param('qos_depth', 1,
          'History depth (keep last) of the image subscription. 1 keeps only the newest frame; larger only '
          'adds stale frames.', 'input', low=1, high=100),
    Param('max_aspect_ratio', DEFAULT_MAX_ASPECT_RATIO,
          "Frames whose longer side exceeds this many times the shorter one are rejected (the network input's "
          'width, so memory and time, grows with it: a 1x200 strip would need gigabytes). The default lets '
          'panoramas up to 10:1 through.', 'input', True, *MAX_ASPECT_RATIO_RANGE),
    # --- inference: change at run time -------------------------------------------------------------------
    Param('upsample_ratio', 4, 'Heatmap upsampling for keypoint refinement.', 'inference', True, 1, 16),
    Param('peak_threshold', _DECODER.peak_threshold, 'Minimum heatmap value of a keypoint.', 'inference',
          True, 0.0, 1.0),
    Param('min_paf_score', _DECODER.min_paf_score,
          'A limb sample counts when the part affinity field agrees by more than this.', 'inference',
          True, 0.0, 1.0),
    Param('success_ratio', _DECODER.success_ratio,
          'Fraction of the samples along a limb that must count for the limb to connect.', 'inference',
          True, 0.0, 1.0),
    Param('min_keypoints', DIFFERS_FROM_LIBRARY['min_keypoints'],
          'Poses with fewer keypoints are dropped before tracking (the library default is 2).', 'inference',
          True, 1, 18),
    Param('grouping_min_score', _DECODER.min_pose_score,
          "The decoder's test (the reference's): a grouped pose whose keypoint and limb scores average less than "
          'this per keypoint is dropped before tracking.', 'inference', True, 0.0, 1.0),
    Param('min_pose_score', 0.0,
          'Poses whose score (the published Pose2D.score, in [0, 1]) is lower are not published; they are still '
          'tracked, so a person keeps the id through frames under the threshold.', 'inference', True, 0.0, 1.0),
    # --- tracking and smoothing: change at run time ------------------------------------------------------
    Param('track', True, 'Give each person a track id that stays with them across frames (else id -1).',
          'tracking', True),
    Param('tracker_max_missed', _TRACKER['max_missed'],
          'Frames a track survives without being seen (a person missed for that many frames keeps the id).',
          'tracking', True, 0, 1000),
    Param('tracker_min_similarity', _TRACKER['min_similarity'],
          'Minimum keypoint similarity (OKS) between a pose and a track to continue the track.', 'tracking',
          True, 0.0, 1.0, low_excluded=True),
    Param('smooth', True, "One Euro filtering of tracked keypoints on the images' stamps.", 'tracking', True),
    Param('smoothing_min_cutoff', _ONE_EURO.min_cutoff,
          'One Euro min cutoff (Hz): smoothing at rest; lower is smoother (more lag).', 'tracking',
          True, 0.0, 1000.0, low_excluded=True),
    Param('smoothing_beta', _ONE_EURO.beta,
          'One Euro beta: how fast the cutoff rises with speed; higher lags less behind fast motion.',
          'tracking', True, 0.0, 100.0),
    Param('smoothing_d_cutoff', _ONE_EURO.d_cutoff, 'One Euro cutoff (Hz) of the speed estimate.', 'tracking',
          True, 0.0, 1000.0, low_excluded=True),
    # --- output: change at run time ----------------------------------------------------------------------
    Param('publish_annotated', True,
          "Publish 'image_annotated' (the input with the skeletons drawn); only drawn while someone "
          'subscribes.', 'output', True),
    Param('annotated_max_rate', 10.0, "Maximum rate (Hz) of 'image_annotated'; 0 = every processed frame.",
          'output', True, 0.0, 1000.0),
    Param('hri', False,
          'Also publish the REP-155 (ROS4HRI) body topics: /humans/bodies/tracked and, per tracked body, '
          '/humans/bodies/<id>/roi and /humans/bodies/<id>/skeleton2d (needs track).', 'output'),
    Param('diagnostics_period', 1.0, "Seconds between two '/diagnostics' messages.", 'output',
          low=0.05, high=60.0),
    Param('stale_timeout', 5.0,
          'Seconds without an input image after which the diagnostics warn that the image topic is dead.',
          'output', True, 0.0, 3600.0, low_excluded=True),
    # --- depth: people in metres from an aligned depth image -----------------------------------------------
    Param('use_depth', False,
          "Also subscribe 'depth/image' (16UC1 mm or 32FC1 m, aligned to the colour image) and "
          "'depth/camera_info', pair them with the colour images by stamp and publish 'poses_3d' and "
          "'skeleton_markers'.", 'depth'),
    Param('depth_slop', 0.01,
          'Largest stamp difference (s) between a colour image and the depth image paired with it; 0 = equal '
          'stamps only.', 'depth', True, 0.0, 1.0),
    Param('depth_min_range', 0.1, 'Depths nearer than this (m) are no depth.', 'depth', True, 0.0, 100.0),
    Param('depth_max_range', 10.0, 'Depths farther than this (m) are no depth.', 'depth', True, 0.0, 100.0,
          low_excluded=True),
    Param('depth_window_scale', 0.05,
          "Side of the window a keypoint's depth is taken from, as a fraction of the person's size in the image.",
          'depth', True, 0.0, 1.0, low_excluded=True),
)

BY_NAME = {param.name: param for param in PARAMS}
# One place that says which parameters feed which part of the pipeline.
DECODER_PARAMS = {'peak_threshold': 'peak_threshold', 'min_paf_score': 'min_paf_score',
                  'success_ratio': 'success_ratio', 'min_keypoints': 'min_keypoints',
                  'grouping_min_score': 'min_pose_score'}
SMOOTHING_PARAMS = {'smoothing_min_cutoff': 'min_cutoff', 'smoothing_beta': 'beta',
                    'smoothing_d_cutoff': 'd_cutoff'}
TRACKER_PARAMS = {'tracker_max_missed': 'max_missed', 'tracker_min_similarity': 'min_similarity'}
LEARNER_ATTRIBUTE_PARAMS = ('max_aspect_ratio',)  # set as the learner's attribute of the same name


def defaults():
    """{name: default} of every parameter."""
    return {param.name: param.default for param in PARAMS}


def check(name, value):
    """None when `value` is allowed for the parameter `name`, else the reason it is refused."""
    param = BY_NAME.get(name)
    if param is None:
        return f'unknown parameter {name!r}'
    return param.check(value)


def check_all(values):
    """Reasons (a list, empty when all is well) why a full set of parameter values cannot run together."""
    reasons = [reason for name, value in values.items() if (reason := check(name, value))]
    base_height = values.get('base_height', 0)
    if not reasons and values.get('depth_min_range', 0.0) >= values.get('depth_max_range', 10.0):
        reasons.append('depth_min_range must be smaller than depth_max_range')
    lowest = BASE_HEIGHT_RANGE[0]
    if not reasons and 0 < base_height < lowest:
        reasons.append(f'base_height must be 0 (the model\'s own) or at least {lowest}, got {base_height}')
    return reasons


def markdown_table(params=PARAMS):
    """The parameter table for the README (Markdown)."""
    lines = ['| parameter | type | default | allowed values | changes at run time | description |',
             '|---|---|---|---|---|---|']
    for param in params:
        default = repr(param.default) if param.type is str else str(param.default).lower() \
            if param.type is bool else f'{param.default:g}' if param.type is float else str(param.default)
        lines.append(f'| `{param.name}` | {param.type_name} | `{default}` | {param.constraints or "any"} | '
                     f'{"yes" if param.dynamic else "no (read-only)"} | {param.description} |')
    return '\n'.join(lines)


if __name__ == '__main__':
    print(markdown_table())
