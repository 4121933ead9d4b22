"""Track ids on sequences built from real annotated people moved over frames: crossings and dropouts."""
import numpy as np
import pytest

from conftest import MINI_VAL_ANNOTATIONS
from openpose_ros.evaluation.metrics import load_ground_truth
from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.pose import Pose
from openpose_ros.tracking.tracker import PoseTracker

FPS = 10.0


def real_people(count):
    """Keypoints (18, 2) of `count` real people with many labelled keypoints, each centred on the origin."""
    records = load_coco_keypoints(load_ground_truth(str(MINI_VAL_ANNOTATIONS)))
    people = [p for r in records for p in r.keypoints if (p[:, 2] > 0).sum() >= 12]
    assert len(people) >= count
    result = []
    for person in people[:count]:
        xy = np.where(person[:, 2:] > 0, person[:, :2], -1.0).astype(np.float32)
        found = xy[:, 0] >= 0
        height = np.ptp(xy[found, 1])
        xy[found] = (xy[found] - xy[found].mean(axis=0)) * (200.0 / height)  # all 200 px tall
        result.append(xy)
    return result


def frame_poses(people, positions, present, rng):
    poses = []
    for person, (x, y), here in zip(people, positions, present):
        if here:
            xy = person.copy()
            found = xy[:, 0] >= 0
            xy[found] += (x, y) + rng.normal(0, 2.0, (found.sum(), 2))
            poses.append(Pose(xy, 0.9))
    return poses


def run(tracker, people, trajectory, dropouts, frames, seed=0):
    """Returns, per person, the ids it got in the frames where it was present."""
    rng = np.random.default_rng(seed)
    ids = {person: [] for person in range(len(people))}
    for frame in range(frames):
        present = [frame not in dropouts.get(person, ()) for person in range(len(people))]
        poses = frame_poses(people, [trajectory(person, frame) for person in range(len(people))], present, rng)
        tracker.update(poses, frame / FPS)
        for person, pose in zip([p for p in range(len(people)) if present[p]], poses):
            ids[person].append(pose.id)
    return ids


def crossing(person, frame):
    """Persons 0 and 1 walk towards each other and cross at frame 20; person 2 stands to the side."""
    if person == 0:
        return 100 + 20 * frame, 300
    if person == 1:
        return 900 - 20 * frame, 310
    return 1100, 300


def test_crossing_people_with_dropouts_keep_their_ids():
    people = real_people(3)
    dropouts = {0: {12, 19, 20}, 1: {21}, 2: {5, 6, 30}}  # one- and two-frame dropouts, at the crossing too
    ids = run(PoseTracker(), people, crossing, dropouts, frames=40)
    for person, seen in ids.items():
        assert len(set(seen)) == 1, f'person {person} changed id: {seen}'
    assert len({seen[0] for seen in ids.values()}) == 3


def test_a_track_missing_longer_than_its_memory_gets_a_new_id():
    people = real_people(1)
    ids = run(PoseTracker(max_missed=2), people, lambda person, frame: (300 + 5 * frame, 300), {0: {5, 6, 7}}, 12)
    assert ids[0][:5] == [0] * 5 and set(ids[0][5:]) == {1}


def test_reset_starts_a_new_stream():
    people = real_people(2)
    tracker = PoseTracker()
    run(tracker, people, crossing, {}, frames=3)
    tracker.reset()
    ids = run(tracker, people, crossing, {}, frames=2)
    assert sorted(i[0] for i in ids.values()) == [0, 1]


def test_bad_tracker_settings_are_refused():
    with pytest.raises(ValueError):
        PoseTracker(min_similarity=0)
    with pytest.raises(ValueError):
        PoseTracker(max_missed=-1)


def test_without_memory_the_same_dropouts_change_ids():
    """The reference keeps no memory: this shows the crossing test above is able to fail."""
    people = real_people(3)
    ids = run(PoseTracker(max_missed=0), people, crossing, {0: {12, 19, 20}, 1: {21}, 2: {5, 6, 30}}, frames=40)
    assert any(len(set(seen)) > 1 for seen in ids.values())


def test_a_fragment_of_a_person_does_not_take_the_persons_id():
    person = real_people(1)[0] + 400
    tracker = PoseTracker()
    tracker.update([Pose(person.copy(), 0.9)], 0.0)
    fragment = np.full_like(person, -1.0)
    found = np.flatnonzero(person[:, 0] >= 0)[:2]
    fragment[found] = person[found]
    whole, part = Pose(person + 1.0, 0.9), Pose(fragment, 0.3)
    tracker.update([part, whole], 0.1)
    assert whole.id == 0 and part.id == 1
