"""Shared test fixtures: paths of the real data in ../shared/data (read in place, never copied)."""
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data'
COCO = DATA / 'coco'
MMPOSE_ANNOTATIONS = COCO / 'mmpose-tests' / 'test_coco.json'
MMPOSE_IMAGES = COCO / 'mmpose-tests'
MINI_VAL_ANNOTATIONS = COCO / 'coco-mini' / 'annotations' / 'person_keypoints_val2017.json'
MINI_TRAIN_ANNOTATIONS = COCO / 'coco-mini' / 'annotations' / 'person_keypoints_train2017.json'
MINI_VAL_IMAGES = COCO / 'coco-mini' / 'val2017'
PHOTO = MMPOSE_IMAGES / '000000000785.jpg'
VIDEO = DATA / 'video' / 'vtest.avi'
TEST_MODEL = ROOT / 'test' / 'models' / 'tiny_coco'


# The tests' caches (the OpenVINO IR cache, downloads) live in a folder of their own, never the user's ~/.cache;
# node processes started by the tests inherit it.
TEST_CACHE = Path(tempfile.mkdtemp(prefix='openpose_ros_test_cache_'))
os.environ['XDG_CACHE_HOME'] = str(TEST_CACHE)


def pytest_unconfigure(config):
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


# Names through which a test module reads the real data; without the data folder its tests are skipped.
DATA_NAMES = ('DATA', 'COCO', 'MMPOSE_', 'MINI_', 'PHOTO', 'VIDEO', 'shared/data', "'shared'")


def needs_data(path: Path, seen=None) -> bool:
    """Whether the test module (or a test module it imports) reads the real data."""
    seen = set() if seen is None else seen
    seen.add(path)
    source = re.sub(r'^[A-Z_]+ = .*$', '', path.read_text(), flags=re.M)  # definitions alone read nothing
    if any(name in source for name in DATA_NAMES):
        return True
    imported = set(re.findall(r'^\s*(?:from|import) (\w+)', source, re.M))
    return any(needs_data(path.parent / f'{name}.py', seen) for name in imported
               if (path.parent / f'{name}.py').is_file() and path.parent / f'{name}.py' not in seen
               and name != 'conftest')


def pytest_collection_modifyitems(config, items):
    """Without ../shared/data (a clone outside this setting) the tests that read it skip, saying why; the others
    run."""
    if PHOTO.is_file():
        return
    skip = pytest.mark.skip(reason=f'needs the real test data (COCO photos and annotations, a video) at {DATA}, '
                                   'which is absent')
    sources = {}
    for item in items:
        path = Path(str(item.fspath))
        if path not in sources:
            sources[path] = needs_data(path)
        if sources[path]:
            item.add_marker(skip)


@pytest.fixture(scope='module')
def one_torch_thread():
    """One torch thread for a module (pytestmark = pytest.mark.usefixtures('one_torch_thread')): its networks are
    small, and on a shared machine two threads fight for the cores."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def client():
    """A rclpy node of the test process (test_pose_estimation.Client) that talks to node processes over DDS."""
    from ros_helpers import require_ros
    require_ros()
    assert TEST_MODEL.is_dir(), f'the trained test model is missing: {TEST_MODEL}'
    from test_pose_estimation import Client
    client = Client()
    yield client
    client.close()
