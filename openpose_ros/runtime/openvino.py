"""OpenVINO backend: the exported ONNX model in fp32, bf16 (where the device computes it natively) or int8.

Same interface as openpose_ros.runtime.backends: `run(batch) -> (heatmaps, pafs)`. Imports neither torch nor
onnxruntime, so an OpenVINO-only process pays for neither, nor for OpenVINO's model-conversion API (see _openvino).
The model is compiled once per input size (a camera's size does not change) and the compiled models of the last
few sizes are kept: each holds its own copy of the weights in the layout the device computes with, and its own
activations.

The model is read through a cache of OpenVINO IR in the user's cache folder (see ModelCache): the ONNX model as
read (and folded), keyed by its SHA-256, its weights mapped from the cache's file instead of held on the heap.
Once compiled, the device computes with its own copy of the weights, so the mapped pages are handed back to the
system (re-read from the file if OpenVINO looks at them again): 12-13 MiB less peak memory for the published model,
and OpenVINO's ONNX reader is no longer loaded once the entry exists.
"""
import hashlib
import json
import logging
import mmap
import os
import sys
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from openpose_ros.files import atomic_path, file_sha256
from openpose_ros.runtime.backends import (DEFAULT_OPENVINO_DEVICE, INPUT_NAME, OUTPUT_NAMES, OnnxBackend, cpu_threads,
                                           return_free_heap)
from openpose_ros.runtime.loading import default_download_dir
from openpose_ros.runtime.quantize import QUANTIZED_SUFFIX, quantized_path

LOG = logging.getLogger(__name__)
PRECISIONS = ('auto', 'fp32', 'bf16')
DEFAULT_DEVICE = DEFAULT_OPENVINO_DEVICE
COMPILED_SIZES = 4  # input sizes whose compiled model is kept: a few cameras, or a few scales
_PRECISION_HINTS = {'fp32': 'f32', 'bf16': 'bf16', 'int8': 'f32'}  # int8: its float layers stay fp32


def _openvino() -> Any:
    """The openvino module, imported without its model-conversion API when nothing imported it yet.

    `import openvino` also imports openvino.tools.ovc (convert_model) when it can, and with it OpenVINO's
    telemetry, its TensorFlow front end, ssl, multiprocessing, email and about 150 other modules: 16 MiB of the
    process's memory that running an ONNX model never uses. openvino's __init__ skips that API when importing it
    raises ImportError, which a None in sys.modules makes it do; the None is taken out afterwards, so
    `import openvino.tools.ovc` still works later (only the shortcut `openvino.convert_model` is then missing).
    """
    if 'openvino' not in sys.modules:
        sys.modules['openvino.tools.ovc'] = None  # type: ignore[assignment]
        try:
            import openvino  # noqa: F401 (the module is returned from sys.modules)
        finally:
            sys.modules.pop('openvino.tools.ovc', None)
    return sys.modules['openvino']


def _fold_constants(model: Any) -> None:
    """Folds the batch norms (and any other constant arithmetic) into the convolutions, as OpenVINO's model
    conversion does. The device would fold them anyway, at every compilation, into new weights that each compiled
    model keeps beside the read model's own; folded once here, the model and every compiled size share one copy:
    the same results bit for bit, 13 MiB less for the published model exported by optimize() (without constant
    folding), 14 MiB less again for every further input size. Not for int8: it changes the quantised graph's
    results a little. Where OpenVINO lacks the transformation (it is not in its public API) the device folds."""
    try:
        from openvino._offline_transformations import apply_moc_transformations
    except ImportError:
        LOG.debug('OpenVINO without apply_moc_transformations: the device folds the constants')
        return
    apply_moc_transformations(model, cf=True)
    return_free_heap()


def default_cache_dir() -> Path:
    """The user's OpenVINO model cache: $XDG_CACHE_HOME/openpose_ros/openvino (~/.cache/openpose_ros/openvino)."""
    return default_download_dir() / 'openvino'


class CacheEntryError(ValueError):
    """A cache entry is not what its manifest describes (damaged, or written by something else)."""


class ModelCache:
    """OpenVINO IR of ONNX models in `folder`, one entry (a folder) per model: <key>/ holding model.xml,
    model.bin (the weights) and manifest.json (the key and the SHA-256 of both files).

    The key is the ONNX file's SHA-256, whether its constants were folded and the OpenVINO version, so a changed
    model, a quantised one or another OpenVINO never reuses an entry. An entry is written whole into a temporary
    folder and renamed into place (files.atomic_path), and both files are checked against the manifest before
    every use; one that does not match is never used (it is written again). Trust: an entry is made only from the
    bytes whose SHA-256 names it, and it is IR (a graph and raw weights, parsed like the ONNX file), not a
    compiled blob with generated code, so it is no more to be trusted than the model folder it came from; anyone
    able to forge an entry and its manifest can write the user's files, model folders included.
    """
    XML, BIN, MANIFEST = 'model.xml', 'model.bin', 'manifest.json'

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(source_sha256: str, folded: bool) -> str:
        """The entry's name: the source model's SHA-256, whether it was folded, and OpenVINO's version."""
        version = ''.join(c if c.isalnum() or c == '.' else '_' for c in _openvino().get_version())
        return f'{source_sha256}-{"folded" if folded else "as-read"}-openvino-{version}'

    def load(self, core: Any, key: str) -> tuple[Any, mmap.mmap] | None:
        """(model, mapped weights) of entry `key`, None when there is none; CacheEntryError when it is damaged."""
        entry = self.folder / key
        if not entry.is_dir():
            return None
        try:
            manifest = json.loads((entry / self.MANIFEST).read_text(encoding='utf-8'))
            checksums = manifest['sha256'] if manifest['key'] == key else None
            xml = (entry / self.XML).read_bytes()
            with open(entry / self.BIN, 'rb') as stream:
                weights = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_COPY)  # private: never written back
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CacheEntryError(f'{entry} is incomplete or damaged ({error!r})') from error
        if (checksums is None or hashlib.sha256(xml).hexdigest() != checksums.get(self.XML)
                or hashlib.sha256(weights).hexdigest() != checksums.get(self.BIN)):
            raise CacheEntryError(f'{entry} does not match its manifest')
        ov = _openvino()
        return core.read_model(xml, ov.Tensor(np.frombuffer(weights, dtype=np.uint8), shared_memory=True)), weights

    def store(self, key: str, model: Any) -> None:
        """Writes `model` as entry `key` (replacing a damaged one); OSError or RuntimeError when it cannot."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with atomic_path(self.folder / key) as temporary:
            temporary.mkdir()
            _openvino().serialize(model, str(temporary / self.XML), str(temporary / self.BIN))
            checksums = {name: file_sha256(temporary / name) for name in (self.XML, self.BIN)}
            (temporary / self.MANIFEST).write_text(json.dumps({'key': key, 'sha256': checksums}), encoding='utf-8')


def device_capabilities(device: str = DEFAULT_DEVICE) -> tuple[str, ...]:
    """The device's OPTIMIZATION_CAPABILITIES, e.g. ('FP32', 'BF16', 'INT8', ...); BF16 means native bf16."""
    return tuple(_openvino().Core().get_property(device, 'OPTIMIZATION_CAPABILITIES'))


def resolve_precision(asked: str, capabilities: Sequence[str], device: str = DEFAULT_DEVICE) -> str:
    """The float precision to run: 'auto' is bf16 where the device has native bf16, else fp32; 'bf16' without
    native bf16 (emulated, slower than fp32) runs fp32 with a warning."""
    if asked not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {asked!r}')
    native_bf16 = 'BF16' in capabilities
    if asked == 'bf16' and not native_bf16:
        LOG.warning('precision bf16 was asked for but OpenVINO device %s has no native bf16 (capabilities: %s); '
                    'running fp32', device, ', '.join(capabilities))
        return 'fp32'
    if asked == 'auto':
        return 'bf16' if native_bf16 else 'fp32'
    return asked


class OpenVinoBackend:
    """Runs an exported ONNX model (dynamic height and width) with OpenVINO, tuned for latency.

    path: an fp32 model, or a quantised <name>.int8.onnx (whose precision is 'int8' whatever is asked: its
    float layers run fp32); precision: 'auto', 'fp32' or 'bf16' (see resolve_precision); device: an OpenVINO
    device ('CPU', 'GPU', 'NPU'); threads: CPU inference threads (default: the cores this process may use);
    capabilities: the device's optimisation capabilities (default: asked of the device); compiled_sizes: how
    many input sizes keep their compiled model; cache_dir: the ModelCache's folder (None: default_cache_dir(),
    False: no cache). A cache that cannot be written (read-only, full) is passed by, with a warning.
    """

    def __init__(self, path: str | os.PathLike[str], precision: str = 'auto', device: str = DEFAULT_DEVICE,
                 threads: int | None = None, capabilities: Sequence[str] | None = None,
                 compiled_sizes: int = COMPILED_SIZES, cache_dir: str | os.PathLike[str] | Literal[False] | None = None
                 ) -> None:
        if compiled_sizes < 1:
            raise ValueError(f'compiled_sizes must be >= 1, got {compiled_sizes}')
        self.device = str(device)
        self.path = Path(path)  # the model file, so that a learner can save the model it runs
        if Path(path).name.endswith(QUANTIZED_SUFFIX):
            self.precision = 'int8'
        else:
            if capabilities is None:
                capabilities = device_capabilities(self.device)
            self.precision = resolve_precision(precision, capabilities, self.device)
        self._core = _openvino().Core()
        fold = self.precision != 'int8'
        if cache_dir is False:
            self._model, self._mapped_weights = self._read(path, fold), None
        else:
            cache = ModelCache(default_cache_dir() if cache_dir is None else cache_dir)
            self._model, self._mapped_weights = self._read_through(cache, path, fold)
        self._config: dict[str, str | int] = {'PERFORMANCE_HINT': 'LATENCY',
                                              'INFERENCE_PRECISION_HINT': _PRECISION_HINTS[self.precision]}
        if self.device == DEFAULT_DEVICE:
            self._config['INFERENCE_NUM_THREADS'] = int(threads or cpu_threads())
        self._compiled_sizes = compiled_sizes
        # input shape -> infer request of the model compiled for it
        self._requests: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.name = f'openvino-{self.device.lower()}-{self.precision}'
        self.runtime = {'backend': 'openvino', 'precision': self.precision, 'device': self.device}

    def _read(self, model: bytes | str | os.PathLike[str], fold: bool) -> Any:
        """The model read from an ONNX file or its bytes, with its constants folded when `fold`."""
        model = self._core.read_model(model if isinstance(model, bytes) else str(model))
        if fold:
            _fold_constants(model)
        return model

    def _read_through(self, cache: ModelCache, path: str | os.PathLike[str], fold: bool
                      ) -> tuple[Any, mmap.mmap | None]:
        """(model, mapped weights) from `cache`, its entry made first when missing or damaged; (model, None)
        read from `path` when the cache cannot be written."""
        key = cache.key(file_sha256(path), fold)
        try:
            found = cache.load(self._core, key)
            if found is not None:
                return found
        except CacheEntryError as error:
            LOG.warning('OpenVINO model cache: %s; making it again', error)
        source = Path(path).read_bytes()
        key = cache.key(hashlib.sha256(source).hexdigest(), fold)  # the bytes read are those the entry holds
        model = self._read(source, fold)
        del source
        try:
            cache.store(key, model)
            found = cache.load(self._core, key)
            if found is None:
                raise CacheEntryError(f'{cache.folder / key} is missing right after it was written')
        except (OSError, RuntimeError, CacheEntryError) as error:
            LOG.warning('OpenVINO model cache %s cannot be used (%s): %s is read without it, which takes more '
                        'memory', cache.folder, error, path)
            return model, None
        del model
        return_free_heap()
        return found

    def _release_mapped_weights(self) -> None:
        """The compiled model computes with its own copy of the weights: the pages of the read model's mapped
        weights go back to the system (read from the cache's file again should OpenVINO look at them)."""
        if self._mapped_weights is not None and hasattr(mmap, 'MADV_DONTNEED'):
            self._mapped_weights.madvise(mmap.MADV_DONTNEED)

    @property
    def compiled_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with a compiled model, least recently used first."""
        return list(self._requests)

    def _request(self, shape: tuple[int, ...]) -> Any:
        request = self._requests.get(shape)
        if request is not None:
            self._requests.move_to_end(shape)
            return request
        if len(self._requests) >= self._compiled_sizes:
            self._requests.popitem(last=False)
        self._model.reshape({INPUT_NAME: list(shape)})  # a static shape compiles to faster code
        request = self._core.compile_model(self._model, self.device, self._config).create_infer_request()
        self._release_mapped_weights()
        return_free_heap()
        self._requests[shape] = request
        return request

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (heatmaps, pafs) of a (N, 3, H, W) batch as float32 numpy arrays (copies); an input shape not seen
        lately is compiled first."""
        request = self._request(tuple(batch.shape))
        request.infer({INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        # The request reuses its output memory on the next run: copy.
        heatmaps, pafs = (np.array(request.get_tensor(name).data, dtype=np.float32) for name in OUTPUT_NAMES)
        return heatmaps, pafs


def runtime_backend(path: str | os.PathLike[str], device: str = 'cpu', runtime: dict[str, str] | None = None
                    ) -> OnnxBackend | OpenVinoBackend:
    """The backend for the ONNX model `path` on the runtime a saved model records (its .json's "runtime", e.g.
    {"backend": "openvino", "precision": "bf16", "device": "CPU"}); ONNX Runtime on `device` when it records
    none. An int8 record runs the quantised twin <name>.int8.onnx when it is there, else fp32 with a warning."""
    runtime = runtime or {}
    if runtime.get('backend') != 'openvino':
        return OnnxBackend(path, device)
    precision = runtime.get('precision', 'auto')
    if precision == 'int8' and not Path(path).name.endswith(QUANTIZED_SUFFIX):
        if quantized_path(path).is_file():
            path = quantized_path(path)
        else:
            LOG.warning('%s was optimised for OpenVINO int8 but %s is missing; running fp32',
                        path, quantized_path(path).name)
            precision = 'fp32'
    return OpenVinoBackend(path, precision, runtime.get('device', DEFAULT_DEVICE))
