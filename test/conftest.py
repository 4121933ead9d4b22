"""Shared test fixtures: paths of the real data in ../shared/data (read in place, never copied)."""
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


@pytest.fixture(scope='session', autouse=True)
def shared_data_present():
    if not PHOTO.is_file():
        pytest.fail(f'the real test data is missing: expected {DATA} beside the project')


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
    """A rclpy node of the test process (test_node.Client) that talks to node processes over DDS."""
    from ros_helpers import require_ros
    require_ros()
    assert TEST_MODEL.is_dir(), f'the trained test model is missing: {TEST_MODEL}'
    from test_node import Client
    client = Client()
    yield client
    client.close()
