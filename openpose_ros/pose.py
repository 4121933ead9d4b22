"""The result type (`Pose`) and what users do with it: boxes and drawing."""
import cv2
import numpy as np

from openpose_ros.keypoints import KEYPOINT_COLORS, KEYPOINT_NAMES, LIMB_COLORS, LIMBS, NUM_KEYPOINTS, SKELETON

MISSING = -1


class Pose:
    """One person: 18 keypoints in image pixels (-1 where missing), per-keypoint scores, a pose confidence.

    `data` and `confidence` keep OpenDR's names; `id` is the track id (-1 when not tracked).
    """
    num_kpts = NUM_KEYPOINTS
    kpt_names = list(KEYPOINT_NAMES)

    def __init__(self, keypoints, confidence, keypoint_scores=None, id=MISSING):
        self.data = np.asarray(keypoints, np.float32).reshape(NUM_KEYPOINTS, 2)
        self.confidence = float(confidence)
        found = self.found
        self.keypoint_scores = (np.asarray(keypoint_scores, np.float32) if keypoint_scores is not None
                                else found.astype(np.float32))
        self.id = int(id)

    @property
    def keypoints(self):
        return self.data

    @property
    def found(self):
        """Boolean mask of the keypoints that were detected."""
        return self.data[:, 0] >= 0

    @property
    def bbox(self):
        return get_bbox(self)

    def __repr__(self):
        return f'Pose(id={self.id}, confidence={self.confidence:.3f}, keypoints={int(self.found.sum())}/18)'


def get_bbox(pose):
    """(x, y, width, height) of the box around the found keypoints, in pixels; zeros when none was found."""
    points = pose.data[pose.found]
    if len(points) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def draw(img, pose, track=True, thickness=2):
    """Draws one pose or a list of poses on a BGR image in place: limbs, keypoints and (with track) the id."""
    poses = pose if isinstance(pose, (list, tuple)) else [pose]
    scale = max(1, round(max(img.shape[:2]) / 640))
    for one in poses:
        points = np.round(one.data).astype(int)
        found = one.found
        for limb in SKELETON:
            a, b = LIMBS[limb]
            if found[a] and found[b]:
                cv2.line(img, tuple(points[a]), tuple(points[b]), LIMB_COLORS[limb], thickness * scale, cv2.LINE_AA)
        for index in np.flatnonzero(found):
            cv2.circle(img, tuple(points[index]), 3 * scale, KEYPOINT_COLORS[index], -1, cv2.LINE_AA)
        if track and one.id >= 0 and found.any():
            x, y, _, _ = get_bbox(one)
            cv2.putText(img, f'id {one.id}', (int(x), max(int(y) - 6 * scale, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5 * scale, (255, 255, 255), scale, cv2.LINE_AA)
    return img
