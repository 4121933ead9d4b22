"""The folder `learner.save(path)` writes: <name>.pth (the weights), <name>.json (architecture, pre-processing,
the SHA-256 of each weight file) and, when ONNX Runtime runs, <name>.onnx and <name>.int8.onnx.

Reading checks the metadata's form, that every file it names lies inside the folder, and each file's checksum
before use; the option values are checked by the learner with its constructor's rules. No torch here.
"""
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from openpose_ros.files import file_sha256
from openpose_ros.runtime.quantize import QUANTIZED_SUFFIX

LOG = logging.getLogger(__name__)
FORMAT_VERSION = 2  # 2: the SHA-256 of each weight file ('sha256'), the int8 model by name ('int8')
MAX_METADATA_BYTES = 1 << 20  # a model's metadata is about 1 kB
FILE_ROLES = ('weights', 'onnx', 'int8')
RUNTIME_PRECISIONS = ('auto', 'fp32', 'bf16', 'int8')
_SHA256 = re.compile(r'[0-9a-f]{64}')
_unverified_folders_warned = set()


class ModelFileError(ValueError):
    """A saved model's file is not the one its metadata describes (changed, damaged, or not listed)."""


def file_names(name):
    """{'weights': name.pth, 'onnx': name.onnx, 'int8': name.int8.onnx}: the files a model of this name owns."""
    return {'weights': f'{name}.pth', 'onnx': f'{name}.onnx', 'int8': f'{name}{QUANTIZED_SUFFIX}'}


def metadata_path(folder):
    """The metadata file of a saved model folder: <folder>/<folder name>.json."""
    folder = Path(folder)
    return folder / f'{folder.name}.json'


@dataclass(frozen=True)
class SavedModel:
    """A saved model folder's metadata, read and checked; `weights`, `onnx`, `int8` are paths in the folder
    (onnx and int8 None when not saved); `checksums` maps file names to SHA-256, None in a folder saved before
    format 2 (its files cannot be verified)."""
    folder: Path
    metadata: dict
    weights: Path
    onnx: Path = None
    int8: Path = None
    checksums: dict = None
    runtime: dict = None

    def verified(self, path):
        """`path` (one of this model's files) once its SHA-256 matches the metadata; ModelFileError if not."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f'{path} is missing from the saved model {self.folder}')
        if self.checksums is None:
            return path
        expected = self.checksums.get(path.name)
        if expected is None:
            raise ModelFileError(f'{path} is not listed in {metadata_path(self.folder)}: not part of this saved model')
        actual = file_sha256(path)
        if actual != expected:
            raise ModelFileError(f'{path} does not match its checksum in {metadata_path(self.folder).name} (SHA-256 '
                                 f'{actual[:16]}..., expected {expected[:16]}...): the file was changed or damaged '
                                 f'after saving, or a save was interrupted; save the model again')
        return path


def read_saved_model(folder):
    """Reads and checks `folder`'s metadata (not yet the files' checksums: see SavedModel.verified).

    Raises FileNotFoundError when it is not a saved model, ValueError when the metadata is invalid.
    """
    folder = Path(folder)
    path = metadata_path(folder)
    if not path.is_file():
        raise FileNotFoundError(f'{folder} is not a saved model: {path.name} is missing')
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise ValueError(f'{path} is not valid model metadata: {path.stat().st_size} bytes, '
                         f'more than {MAX_METADATA_BYTES}')
    try:
        metadata = json.loads(path.read_text(encoding='utf-8'))
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise ValueError(f'{path} is not valid model metadata ({error!r})') from error
    if not isinstance(metadata, dict):
        raise ValueError(f'{path} is not valid model metadata: a JSON object was expected')
    version = metadata.get('format_version', 1)
    if version not in (1, FORMAT_VERSION) or isinstance(version, bool):
        raise ValueError(f'{path} has format_version {version!r}; this version of openpose_ros reads 1 to '
                         f'{FORMAT_VERSION} (a newer one wrote it?)')
    files = {role: _member(folder, path, metadata, role) for role in FILE_ROLES}
    if files['weights'] is None:
        raise ValueError(f'{path} is not valid model metadata: it names no weights')
    return SavedModel(folder, metadata, **files, checksums=_checksums(folder, path, metadata, version),
                      runtime=_runtime(path, metadata))


def _runtime(path, metadata):
    """metadata['runtime'], the runtime that ran the ONNX model when it was saved: None (ONNX Runtime) or
    {"backend": "openvino", "precision": one of RUNTIME_PRECISIONS, "device": an OpenVINO device name}."""
    runtime = metadata.get('runtime')
    if runtime is None:
        return None
    if (not isinstance(runtime, dict) or runtime.get('backend') != 'openvino'
            or runtime.get('precision') not in RUNTIME_PRECISIONS
            or not isinstance(runtime.get('device'), str) or not 0 < len(runtime['device']) <= 64):
        raise ValueError(f'{path} is not valid model metadata: "runtime" must be null or {{"backend": "openvino", '
                         f'"precision": one of {RUNTIME_PRECISIONS}, "device": a device name}}')
    return runtime


def _member(folder, path, metadata, role):
    """The file named by metadata[role] in `folder`; a name that would leave the folder is refused."""
    name = metadata.get(role)
    if name is None:
        return None
    if not isinstance(name, str) or name in ('', '.', '..') or Path(name).name != name or '\\' in name:
        raise ValueError(f'{path}: {role!r} must be the name of a file inside {folder}, not {name!r}')
    return folder / name


def _checksums(folder, path, metadata, version):
    checksums = metadata.get('sha256')
    if checksums is None and version < FORMAT_VERSION:
        if folder not in _unverified_folders_warned:
            _unverified_folders_warned.add(folder)
            LOG.warning('%s was saved without checksums (format 1): its files are not verified; save it again '
                        'to add them', folder)
        return None
    if not isinstance(checksums, dict) or not all(
            isinstance(value, str) and _SHA256.fullmatch(value) for value in checksums.values()):
        raise ValueError(f'{path} is not valid model metadata: "sha256" must map file names to SHA-256 hex digests')
    return checksums


def verified_model_file(path):
    """`path`, an ONNX model about to be run; when it lies in a saved model folder with checksums, it is
    checked against them first (ModelFileError)."""
    path = Path(path)
    if not metadata_path(path.parent).is_file():
        return path
    return read_saved_model(path.parent).verified(path)
