"""Fetching published models and data from their real sources, atomically and with integrity checks.

Every address can be replaced: by the `url` argument, or by the environment variable OPENPOSE_ROS_MIRROR
(a base address, `file:///path/to/folder` works for an offline copy).
"""
import hashlib
import json
import os
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from openpose_ros.files import atomic_path

OPENDR_URL = 'ftp://opendrdata.csd.auth.gr/perception/pose_estimation/lightweight_open_pose/'
ORIGINAL_CHECKPOINT_URL = ('https://download.01.org/opencv/openvino_training_extensions/models/'
                           'human_pose_estimation/checkpoint_iter_370000.pth')
MIRROR_VARIABLE = 'OPENPOSE_ROS_MIRROR'
DEADLINE_SECONDS = 600.0           # the whole download of a mode, all its files together
READ_TIMEOUT_SECONDS = 30.0        # the longest wait for a connection or for any one read
MAX_FILE_BYTES = 512 << 20         # the published files are below 100 MB
CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Remote:
    """A file to fetch: its address (relative ones resolve against the base URL), what it must load as when no
    checksum is published ('checkpoint', 'json' or 'image'), and its checksum when one is."""
    address: str
    target: str                    # path under the download folder
    content: str
    git_blob_sha1: str = ''        # the SHA-1 git gives the file: a published, stable identity


MODES = {
    # The published Lightweight OpenPose model (MobileNet v1, 1 refinement stage): the original release.
    'pretrained': (Remote(ORIGINAL_CHECKPOINT_URL, 'checkpoint_iter_370000.pth', 'checkpoint',
                          git_blob_sha1='501cface3fb9e929daecb04ec9722d3af91b6c20'),),
    # The same model as OpenDR serves it.
    'opendr_pretrained': (Remote('trainedModels/openpose_default/openpose_default.json',
                                 'openpose_default/openpose_default.json', 'json'),
                          Remote('trainedModels/openpose_default/openpose_default.pth',
                                 'openpose_default/openpose_default.pth', 'checkpoint')),
    # ImageNet MobileNet v1, the starting point of training.
    'weights': (Remote('mobilenet_sgd_68.848.pth.tar', 'mobilenet_sgd_68.848.pth.tar', 'checkpoint'),),
    # One COCO image and its annotation.
    'test_data': (Remote('dataset/image/000000000785.jpg', 'dataset/image/000000000785.jpg', 'image'),
                  Remote('dataset/annotation.json', 'dataset/annotation.json', 'json')),
}


class DownloadError(RuntimeError):
    """A file could not be fetched or did not verify; the message says where from and what to do instead."""


def git_blob_sha1(path):
    """The SHA-1 that git gives the file (its blob hash: the header 'blob <size>' and a NUL byte, then the content), in
    hex: the published identity of a file kept in a git repository."""
    digest = hashlib.sha1(f'blob {Path(path).stat().st_size}\0'.encode())
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def resolve(remote, url=None):
    """The address to fetch `remote` from: under the `url` argument or the mirror variable when set."""
    absolute = '://' in remote.address
    base = url or os.environ.get(MIRROR_VARIABLE)
    if base:
        # A mirror holds absolute addresses' files by name and OpenDR's by their path on OpenDR's server.
        return base.rstrip('/') + '/' + (remote.address.rsplit('/', 1)[-1] if absolute else remote.address)
    return remote.address if absolute else OPENDR_URL + remote.address


def download(path, mode='pretrained', verbose=False, url=None, deadline=DEADLINE_SECONDS):
    """Fetches the files of `mode` into the folder `path`; returns the path of the main file.

    Every file is checked before it is kept: against its published hash, else by loading it (a checkpoint with
    weights_only, JSON, an image). Files already present that pass the check are not fetched again; those that
    fail are fetched again. The whole download gives up after `deadline` seconds (> 0; each connection and read
    also waits at most 30 s).
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {", ".join(MODES)}, not {mode!r}')
    if not deadline > 0:
        raise ValueError(f'deadline must be > 0 seconds, not {deadline!r}')
    folder, clock = Path(path), Deadline(deadline)
    fetched = [_fetch(remote, resolve(remote, url), folder / remote.target, verbose, clock) for remote in MODES[mode]]
    return fetched[-1] if mode.endswith('pretrained') else fetched[0]


class Deadline:
    """The time left to a download."""

    def __init__(self, seconds):
        self.seconds, self.ends = seconds, time.monotonic() + seconds

    def read_timeout(self):
        """Seconds to wait for a connection or a read: READ_TIMEOUT_SECONDS, less when the deadline is nearer (at least
        1 ms)."""
        return max(min(READ_TIMEOUT_SECONDS, self.ends - time.monotonic()), 0.001)

    def check(self, address, target):
        """Raises DownloadError (with the advice for offline machines about `target`) once the deadline has passed."""
        if time.monotonic() > self.ends:
            raise DownloadError(f'{address} was not downloaded within the deadline of {self.seconds:g} s. '
                                + _offline_advice(target))


def _offline_advice(target):
    return (f'If this machine is offline or the connection is slow, fetch the file elsewhere and either copy it to '
            f'{target}, point {MIRROR_VARIABLE} (or the url argument) at a folder or server that has it (e.g. '
            f'file:///path/to/folder), or load it directly with learner.load(<file>).')


def _fetch(remote, address, target, verbose, clock):
    if target.is_file() and _problem(remote, target) is None:
        return target
    if verbose:
        print(f'downloading {address} -> {target}')
    try:
        with atomic_path(target) as temporary:
            with _open(address, clock) as source, open(temporary, 'wb') as out:
                _copy(source, out, address, target, clock)
            problem = _problem(remote, temporary)
            if problem is not None:
                raise DownloadError(f'{address} did not verify: {problem}')
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise DownloadError(f'could not download {address} ({error}). ' + _offline_advice(target)) from error
    return target


def _open(address, clock):
    """A readable binary stream of `address`; a local (file://) one must be a regular file."""
    parts = urllib.parse.urlsplit(address)
    if parts.scheme == 'file' and parts.netloc in ('', 'localhost'):
        return _open_regular_file(Path(urllib.request.url2pathname(parts.path)))
    return urllib.request.urlopen(address, timeout=clock.read_timeout())


def _open_regular_file(path):
    """Opens `path` for reading if it is a regular file. A FIFO, a device or a folder is refused without being
    opened in a way that can block (opening a FIFO blocks until someone writes to it)."""
    def refuse():
        raise OSError(f'{path} is not a regular file')

    if not stat.S_ISREG(path.stat().st_mode):
        refuse()
    descriptor = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_NOCTTY', 0))
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # replaced since the check above
            refuse()
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, 'rb')
    except BaseException:
        os.close(descriptor)
        raise


def _copy(source, out, address, target, clock):
    """Copies `source` to `out` within the deadline and the size limit. read1 returns whatever has arrived, so
    a server that trickles bytes cannot hold a read past the deadline."""
    read = getattr(source, 'read1', source.read)
    size = 0
    while chunk := read(CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise DownloadError(f'{address} is larger than {MAX_FILE_BYTES >> 20} MiB, which no published file is')
        clock.check(address, target)
        out.write(chunk)


def _problem(remote, path):
    """Why the file at `path` is not what `remote` promises, or None when it is."""
    if remote.git_blob_sha1:
        digest = git_blob_sha1(path)
        return None if digest == remote.git_blob_sha1 else (
            f'its git blob SHA-1 is {digest}, expected {remote.git_blob_sha1}')
    try:
        LOADERS[remote.content](path)
    except (OSError, ValueError) as error:
        return f'it does not load as {remote.content} ({error})'
    return None


def _load_checkpoint(path):
    from openpose_ros.runtime.checkpoints import read_checkpoint
    read_checkpoint(path)


def _load_image(path):
    from openpose_ros.inference.image import read_pixels
    read_pixels(path)


def _load_json(path):
    with open(path, 'rb') as stream:
        json.load(stream)  # a JSONDecodeError or UnicodeDecodeError is a ValueError


LOADERS = {'checkpoint': _load_checkpoint, 'json': _load_json, 'image': _load_image}
