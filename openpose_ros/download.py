"""Fetching published models and data from their real sources, atomically and with integrity checks.

Every address can be replaced: by the `url` argument, or by the environment variable OPENPOSE_ROS_MIRROR
(a base address, `file:///path/to/folder` works for an offline copy).
"""
import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from openpose_ros.files import atomic_path

OPENDR_URL = 'ftp://opendrdata.csd.auth.gr/perception/pose_estimation/lightweight_open_pose/'
ORIGINAL_CHECKPOINT_URL = ('https://download.01.org/opencv/openvino_training_extensions/models/'
                           'human_pose_estimation/checkpoint_iter_370000.pth')
MIRROR_VARIABLE = 'OPENPOSE_ROS_MIRROR'
TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Remote:
    """A file to fetch: its address (relative ones resolve against the base URL) and a known checksum."""
    address: str
    target: str                    # path under the download folder
    git_blob_sha1: str = ''        # the SHA-1 git gives the file: a published, stable identity


MODES = {
    # The published Lightweight OpenPose model (MobileNet v1, 1 refinement stage): the original release.
    'pretrained': (Remote(ORIGINAL_CHECKPOINT_URL, 'checkpoint_iter_370000.pth',
                          git_blob_sha1='501cface3fb9e929daecb04ec9722d3af91b6c20'),),
    # The same model as OpenDR serves it.
    'opendr_pretrained': (Remote('trainedModels/openpose_default/openpose_default.json',
                                 'openpose_default/openpose_default.json'),
                          Remote('trainedModels/openpose_default/openpose_default.pth',
                                 'openpose_default/openpose_default.pth')),
    # ImageNet MobileNet v1, the starting point of training.
    'weights': (Remote('mobilenet_sgd_68.848.pth.tar', 'mobilenet_sgd_68.848.pth.tar'),),
    # One COCO image and its annotation.
    'test_data': (Remote('dataset/image/000000000785.jpg', 'dataset/image/000000000785.jpg'),
                  Remote('dataset/annotation.json', 'dataset/annotation.json')),
}


class DownloadError(RuntimeError):
    """A file could not be fetched or did not verify; the message says where from and what to do instead."""


def git_blob_sha1(path):
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


def download(path, mode='pretrained', verbose=False, url=None):
    """Fetches the files of `mode` into the folder `path`; returns the path of the main file.

    Files already present and verified are not fetched again.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {", ".join(MODES)}, not {mode!r}')
    folder = Path(path)
    fetched = [_fetch(remote, resolve(remote, url), folder / remote.target, verbose) for remote in MODES[mode]]
    return fetched[-1] if mode.endswith('pretrained') else fetched[0]


def _fetch(remote, address, target, verbose):
    if target.is_file() and _verified(remote, target):
        return target
    if verbose:
        print(f'downloading {address} -> {target}')
    try:
        with atomic_path(target) as temporary:
            with urllib.request.urlopen(address, timeout=TIMEOUT_SECONDS) as response, open(temporary, 'wb') as out:
                shutil.copyfileobj(response, out, 1 << 20)
            if not _verified(remote, temporary):
                raise DownloadError(f'{address} did not verify: its git blob SHA-1 is {git_blob_sha1(temporary)}, '
                                    f'expected {remote.git_blob_sha1}')
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise DownloadError(
            f'could not download {address} ({error}). If this machine is offline, fetch the file elsewhere and '
            f'either copy it to {target}, point {MIRROR_VARIABLE} (or the url argument) at a folder or server '
            f'that has it (e.g. file:///path/to/folder), or load it directly with learner.load(<file>).') from error
    return target


def _verified(remote, path):
    return not remote.git_blob_sha1 or git_blob_sha1(path) == remote.git_blob_sha1
