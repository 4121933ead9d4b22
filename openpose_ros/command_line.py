"""What every executable (`infer`, `train`, `evaluate`, `bag_eval`, ...) shares: its parser, checked numbers,
the device and network flags, the training configuration, and exit statuses.

The training configuration (config/training.yaml, YAML or JSON) has sections whose keys are the long flags'
names with underscores (``batch_size`` for ``--batch-size``); a flag given on the command line wins over the
file, the file over the built-in defaults.
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path

from openpose_ros.formats.yaml_file import read_yaml
from openpose_ros.runtime.backends import DEFAULT_DEVICE, DEFAULT_OPENVINO_DEVICE

CONFIG_NAME = 'training.yaml'
PACKAGE = 'openpose_ros'
ERROR_STATUS = 2
INTERRUPTED_STATUS = 130
DEVICE_HELP = "'auto' (default: CUDA when available, else the CPU), 'cpu' or 'cuda[:N]'"


def command_parser(name, doc):
    """The argument parser of the executable openpose-<name> (`ros2 run openpose_ros <name>`), documented by its
    module docstring: the first paragraph is the description, the rest (examples, exit status) the epilog."""
    description, _, epilog = doc.partition('\n\n')
    return argparse.ArgumentParser(prog=f'openpose-{name.replace("_", "-")}', description=description,
                                   epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)


def checked_number(check, kind=float):
    """An argparse type: a number of type `kind` that `check(value)` accepts (its ValueError is the message), so
    that a bad value is exit status 2 before any work."""
    def parse(text):
        try:
            value = kind(text)
            check(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value
    return parse


def number_in(low, high, kind=float, low_excluded=False):
    """An argparse type: a finite number of type `kind` in [low, high] (in (low, high] with `low_excluded`)."""
    def check(value):
        if not math.isfinite(value) or value < low or (low_excluded and value == low) or value > high:
            raise ValueError(f'must be in {"(" if low_excluded else "["}{low:g}, {high:g}], got {value}')
    return checked_number(check, kind)


def regular_file(text):
    """An argparse type: the path of an existing regular file (not a folder, and not a FIFO or device, which
    reading could block on), refused before anything opens it."""
    if not Path(text).is_file():
        reason = 'does not exist' if not os.path.lexists(text) else 'is a folder' if Path(text).is_dir() \
            else 'is not a regular file'
        raise argparse.ArgumentTypeError(f'{text} {reason}; give a file')
    return text


def add_device_argument(parser):
    """--device, with the default shared by every executable."""
    parser.add_argument('--device', default=DEFAULT_DEVICE, help=DEVICE_HELP)


def add_openvino_arguments(parser):
    """--precision and --openvino-device, the node's parameters of the same names."""
    from openpose_ros.parameters import BY_NAME
    parser.add_argument('--precision', default='auto', choices=BY_NAME['precision'].choices,
                        help=BY_NAME['precision'].description + ' (default auto)')
    parser.add_argument('--openvino-device', default=DEFAULT_OPENVINO_DEVICE,
                        help=BY_NAME['openvino_device'].description + f' (default {DEFAULT_OPENVINO_DEVICE})')


def default_config_path(name=CONFIG_NAME):
    """The package's config file: the source tree's config/, else an install's share/openpose_ros/config/."""
    candidates = [Path(__file__).resolve().parents[1] / 'config' / name,
                  Path(sys.prefix) / 'share' / PACKAGE / 'config' / name]
    candidates += [Path(prefix) / 'share' / PACKAGE / 'config' / name
                   for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if prefix]
    return next((path for path in candidates if path.is_file()), None)


def load_config(path):
    """A YAML (.yaml/.yml, needs PyYAML) or JSON file -> {section: {key: value}}."""
    path = Path(path)
    if path.suffix.lower() in ('.yaml', '.yml'):
        try:
            config = read_yaml(path)
        except ImportError as error:
            raise ImportError(f'{error}, or give a JSON config') from error
    else:
        config = json.loads(path.read_text(encoding='utf-8'))
    config = config or {}
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        raise ValueError(f'{path}: the config must be a mapping of sections, each a mapping of options')
    return config


def apply_config(parser, argv, sections, lenient=()):
    """Reads --config (default: the package's training.yaml) and makes its `sections` the parser's defaults.

    Keys of the `lenient` sections that this parser does not know are skipped (a section shared by several
    executables); unknown keys elsewhere are an error. Returns the config path used (None when none).
    """
    pre = parser.parse_known_args(argv)[0]
    path = pre.config if pre.config is not None else default_config_path()
    if not path:
        return None
    try:
        config = load_config(path)
    except (OSError, ValueError) as error:  # a missing, unreadable or malformed file: exit 2, not a traceback
        parser.error(f'--config {path}: {error}')
    known = {action.dest for action in parser._actions}
    defaults = {}
    for section in sections:
        for key, value in (config.get(section) or {}).items():
            if key not in known:
                if section in lenient:
                    continue
                parser.error(f'{path}: unknown option {key!r} in section {section!r}')
            defaults[key] = value
    parser.set_defaults(**defaults)
    return path


def parse_scales(value):
    """'0.5,1,1.5' or a list -> tuple of floats (None stays None)."""
    if value is None or value == '':
        return None
    if isinstance(value, str):
        value = [v for v in value.split(',') if v.strip()]
    return tuple(float(v) for v in value)


def add_network_arguments(group):
    """The network's options (as the learner's constructor takes them) on an argparse group."""
    from openpose_ros.network import BACKBONES
    group.add_argument('--backbone', default='mobilenet', choices=BACKBONES)
    group.add_argument('--num-refinement-stages', type=int, default=1)
    group.add_argument('--mobilenet-use-stride', action=argparse.BooleanOptionalAction, default=False)
    group.add_argument('--mobilenetv2-width', type=float, default=1.0)
    group.add_argument('--shufflenet-groups', type=int, default=3)


def exit_status(command, args, log, user_errors, install_hint=None):
    """command(args)'s exit status, for a main(). Problems the user can fix (`user_errors`, whose messages say
    how) are logged without a traceback: status 2; so is a missing optional dependency (ImportError) when an
    `install_hint` says how to install it. Ctrl-C: status 130."""
    try:
        return command(args)
    except user_errors as error:
        log.error('%s', error)
    except ImportError as error:
        if install_hint is None:
            raise
        log.error('%s: %s', error, install_hint)
    except KeyboardInterrupt:
        log.error('interrupted')
        return INTERRUPTED_STATUS
    return ERROR_STATUS
