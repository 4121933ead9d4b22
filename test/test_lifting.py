"""Lifting poses to 3D (openpose_ros.inference.lifting) on real COCO photos with the test model's real detections.

The depth images are made from the COCO segmentation masks of the annotated people: each person at a known
distance, the background a farther tilted plane, seen by a camera with known intrinsics and lens distortion.
The expected 3D points are checked independently of the lifting code: projected back through the distorted
camera (cv2.projectPoints) they land on the keypoints, at the person's known depth.
"""
import cv2
import numpy as np
import pytest

from conftest import MINI_TRAIN_ANNOTATIONS, TEST_MODEL
from openpose_ros.inference.lifting import Intrinsics, depth_in_metres, lift_poses

pytestmark = pytest.mark.usefixtures('one_torch_thread')

TRAIN_IMAGES = MINI_TRAIN_ANNOTATIONS.parents[1] / 'train2017'
PHOTOS = (30752, 37666, 183872, 234748, 442450)          # the photos the test model learnt (models/README.md)
PERSON_DEPTHS = (2.0, 2.8, 3.6)                          # metres: the k-th annotated person of a photo
DISTORTION = np.array([0.09, -0.18, 0.0012, -0.0009, 0.05])
MILLIMETRE = 1e-3
# The wall behind the people, tilted about both axes: n . X = offset. A keypoint takes the depth of its nearest
# pixel, so the tilt bounds the error (half a pixel's depth change: here under 0.6 mm at 7-8 m).
PLANE_NORMAL, PLANE_OFFSET = (0.06, -0.05, 1.0), 7.0


def camera(width, height, d=DISTORTION):
    k = np.array([[0.82 * width, 0, width / 2 - 0.5], [0, 0.82 * width, height / 2 - 0.5], [0, 0, 1]])
    return Intrinsics(k, width, height, 'plumb_bob', d)


def background_plane(intrinsics):
    """Depth (float64 metres) of the tilted wall behind the people at each pixel."""
    columns, rows = np.meshgrid(np.arange(intrinsics.width), np.arange(intrinsics.height))
    rays = intrinsics.rays(np.stack([columns, rows], axis=-1).astype(np.float64))
    normal, offset = np.array(PLANE_NORMAL), PLANE_OFFSET
    return offset / (rays @ normal[:2] + normal[2])


def person_labels(coco, image_id, shape):
    """The label image of a photo's annotated people (pycocotools COCO): k for the k-th person, -1 background."""
    people = coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False))
    labels = np.full(shape[:2], -1)
    for index in reversed(range(len(people))):       # farther people first: nearer ones hide them
        labels[coco.annToMask(people[index]) > 0] = index
    return labels


@pytest.fixture(scope='module')
def scenes():
    """Per photo: the colour image, its real detections, the people's label image (-1: background)."""
    from pycocotools.coco import COCO
    from openpose_ros import LightweightOpenPoseLearner
    coco = COCO(str(MINI_TRAIN_ANNOTATIONS))
    learner = LightweightOpenPoseLearner(device='cpu').load(str(TEST_MODEL))
    scenes = []
    for image_id in PHOTOS:
        info = coco.loadImgs(image_id)[0]
        image = cv2.imread(str(TRAIN_IMAGES / info['file_name']))
        labels = person_labels(coco, image_id, image.shape)
        poses = learner.infer(image, track=False, smooth=False)
        scenes.append((image, poses, labels))
    assert sum(len(poses) for _, poses, _ in scenes) >= 5, 'the test model should find the people it learnt'
    return scenes


def render(labels, intrinsics, millimetres=False):
    """The depth image of a scene: each person at its known distance before the tilted background."""
    depth = background_plane(intrinsics)
    for index, distance in enumerate(PERSON_DEPTHS):
        depth[labels == index] = distance
    return np.round(depth * 1000).astype(np.uint16) if millimetres else depth.astype(np.float32)


def owner(pose, labels):
    """The annotated person most of a detection's keypoints lie on."""
    points = np.round(pose.data[pose.found]).astype(int)
    hits = labels[points[:, 1], points[:, 0]]
    hits = hits[hits >= 0]
    return int(np.bincount(hits).argmax()) if len(hits) else -1


def assert_projects_back(lifted, poses, intrinsics):
    for index, pose in enumerate(poses):
        valid = lifted.valid[index]
        if not valid.any():
            continue
        pixels, _ = cv2.projectPoints(lifted.points[index][valid].astype(np.float64), np.zeros(3), np.zeros(3),
                                      intrinsics.k, intrinsics.d)
        np.testing.assert_allclose(pixels.reshape(-1, 2), pose.data[valid], atol=0.01)


@pytest.mark.parametrize('millimetres', [False, True], ids=['float32-metres', 'uint16-millimetres'])
def test_keypoints_lie_at_their_person_depth_and_project_back_onto_the_keypoints(scenes, millimetres):
    checked = 0
    for image, poses, labels in scenes:
        intrinsics = camera(image.shape[1], image.shape[0])
        lifted = lift_poses(poses, render(labels, intrinsics, millimetres), intrinsics)
        assert_projects_back(lifted, poses, intrinsics)
        for index, pose in enumerate(poses):
            person = owner(pose, labels)
            if person < 0:
                continue
            valid = lifted.valid[index]
            assert valid.sum() >= 0.8 * pose.found.sum()
            np.testing.assert_allclose(lifted.points[index][valid, 2], PERSON_DEPTHS[person], atol=MILLIMETRE)
            assert lifted.center_valid[index]
            assert lifted.centers[index][2] == pytest.approx(PERSON_DEPTHS[person], abs=MILLIMETRE)
            checked += valid.sum()
    assert checked >= 60


def test_keypoints_on_a_silhouette_take_the_persons_depth_not_the_background(scenes):
    on_silhouette = 0
    for image, poses, labels in scenes:
        intrinsics = camera(image.shape[1], image.shape[0])
        lifted = lift_poses(poses, render(labels, intrinsics), intrinsics)
        for index, pose in enumerate(poses):
            person = owner(pose, labels)
            for keypoint in np.flatnonzero(pose.found):
                x, y = np.round(pose.data[keypoint]).astype(int)
                around = labels[max(y - 4, 0):y + 5, max(x - 4, 0):x + 5]
                if person < 0 or np.mean(around == person) > 0.6:
                    continue
                on_silhouette += 1                  # at least 40 % of its neighbourhood is something else
                if lifted.valid[index, keypoint]:
                    assert lifted.points[index, keypoint, 2] == pytest.approx(PERSON_DEPTHS[person], abs=MILLIMETRE)
    assert on_silhouette >= 5


@pytest.mark.parametrize('hole', [0, np.nan, np.inf])
def test_holes_give_invalid_keypoints_and_leave_the_others_alone(scenes, hole):
    image, poses, labels = scenes[0]
    intrinsics = camera(image.shape[1], image.shape[0])
    depth = render(labels, intrinsics)
    whole = lift_poses(poses, depth, intrinsics)
    radius = 25
    centres = [pose.data[keypoint] for pose in poses for keypoint in (0, 4, 10) if pose.found[keypoint]]
    assert centres
    columns, rows = np.meshgrid(np.arange(depth.shape[1]), np.arange(depth.shape[0]))
    for x, y in centres:
        depth[(columns - x) ** 2 + (rows - y) ** 2 <= radius ** 2] = hole
    holed = lift_poses(poses, depth, intrinsics)
    for index, pose in enumerate(poses):
        distances = np.min([np.hypot(*(pose.data - centre).T) for centre in centres], axis=0)
        assert not holed.valid[index][pose.found & (distances < 2)].any()
        far = pose.found & (distances > 2 * radius)
        np.testing.assert_array_equal(holed.valid[index][far], whole.valid[index][far])
        np.testing.assert_allclose(holed.points[index][far], whole.points[index][far])


def test_depth_at_another_resolution_gives_the_same_points(scenes):
    compared = 0
    for image, poses, labels in scenes:
        height, width = image.shape[:2]
        colour = camera(width, height)
        full = lift_poses(poses, render(labels, colour), colour)
        small_size = (width * 3 // 4, height * 3 // 4)
        sx, sy = small_size[0] / width, small_size[1] / height   # the depth camera's own CameraInfo
        k = colour.k * [[sx], [sy], [1]]
        k[:2, 2] = (colour.k[:2, 2] + 0.5) * [sx, sy] - 0.5
        small = Intrinsics(k, *small_size, 'plumb_bob', DISTORTION)
        small_labels = cv2.resize(labels.astype(np.int16), small_size, interpolation=cv2.INTER_NEAREST_EXACT)
        lifted = lift_poses(poses, render(small_labels, small), small, image_size=(width, height))
        both = full.valid & lifted.valid
        assert both.sum() >= 0.9 * full.valid.sum()
        np.testing.assert_allclose(lifted.points[both], full.points[both], atol=MILLIMETRE)
        compared += both.sum()
    assert compared >= 60


def test_points_on_a_tilted_plane_are_the_ray_plane_intersections(scenes):
    """No people in depth: the whole image is the tilted plane, so each keypoint's depth varies in its window."""
    for image, poses, _ in scenes:
        intrinsics = camera(image.shape[1], image.shape[0])
        depth = background_plane(intrinsics).astype(np.float32)
        lifted = lift_poses(poses, depth, intrinsics)
        assert_projects_back(lifted, poses, intrinsics)
        points = lifted.points[lifted.valid].astype(np.float64)
        assert len(points) >= 10
        np.testing.assert_allclose(points @ np.array(PLANE_NORMAL), PLANE_OFFSET, atol=MILLIMETRE)


def test_depth_range_and_types():
    assert np.isnan(depth_in_metres(np.array([[0, 1500]], np.uint16)))[0, 0]
    assert depth_in_metres(np.array([[0, 1500]], np.uint16))[0, 1] == pytest.approx(1.5)
    with pytest.raises(ValueError, match='uint16 millimetres or float32 metres'):
        depth_in_metres(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match='distortion model'):
        camera(640, 480).__class__(np.eye(3), 640, 480, 'mystery', [0.1])
    far = np.full((48, 64), 12.0, np.float32)
    keypoints = np.full((1, 18, 2), -1.0)
    keypoints[0, :3] = [[30, 20], [32, 30], [28, 30]]
    assert not lift_poses(keypoints, far, camera(64, 48), max_range=10.0).valid.any()
    assert lift_poses(keypoints, far, camera(64, 48), max_range=15.0).valid[0, :3].all()


def test_an_image_size_that_cannot_be_the_colour_images_is_refused(scenes):
    image, poses, labels = scenes[0]
    height, width = image.shape[:2]
    colour = camera(width, height)
    depth = render(labels, colour)
    channels_first = (height, 3)  # (shape[1], shape[0]) of a (3, H, W) image: a real mistake
    with pytest.raises(ValueError, match='not aligned'):
        lift_poses(poses, depth, colour, image_size=channels_first)
    with pytest.raises(ValueError, match='not aligned'):
        lift_poses(poses, depth[:, : width // 2], colour, image_size=(width, height))
