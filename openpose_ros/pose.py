"""The result type (`Pose`) and what users do with it: boxes and drawing."""
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import ArrayLike

from openpose_ros.keypoints import KEYPOINT_COLORS, KEYPOINT_NAMES, LIMB_COLORS, LIMBS, NUM_KEYPOINTS, SKELETON

MISSING = -1
Box = tuple[float, float, float, float]          # x, y, width, height
LabelBox = tuple[int, int, int, int]             # x0, y0, x1, y1 (x1, y1 exclusive)


class Pose:
    """One person: 18 keypoints in image pixels (-1 where missing), per-keypoint scores, a pose confidence.

    `data` and `confidence` keep OpenDR's names; `id` is the track id (-1 when not tracked).
    """
    num_kpts = NUM_KEYPOINTS
    kpt_names = list(KEYPOINT_NAMES)

    def __init__(self, keypoints: ArrayLike, confidence: float, keypoint_scores: ArrayLike | None = None,
                 id: int = MISSING) -> None:
        """`keypoints`: 18 (x, y) pairs in pixels, -1 where missing; `keypoint_scores`: 18 scores (default: 1
        where found, 0 where missing); `confidence`: the pose's score; `id`: its track id."""
        self.data = np.asarray(keypoints, np.float32).reshape(NUM_KEYPOINTS, 2)
        self.confidence = float(confidence)
        found = self.found
        self.keypoint_scores = (np.asarray(keypoint_scores, np.float32) if keypoint_scores is not None
                                else found.astype(np.float32))
        self.id = int(id)

    @property
    def keypoints(self) -> np.ndarray:
        """The (18, 2) keypoints in image pixels (-1 where missing): `data` itself, not a copy."""
        return self.data

    def copy(self) -> 'Pose':
        """An independent copy (its own keypoint and score arrays)."""
        return Pose(self.data.copy(), self.confidence, self.keypoint_scores.copy(), self.id)

    @property
    def found(self) -> np.ndarray:
        """Boolean mask of the keypoints that were detected."""
        return self.data[:, 0] >= 0

    @property
    def bbox(self) -> Box:
        """The box around the found keypoints as (x, y, width, height), in pixels (see get_bbox)."""
        return get_bbox(self)

    def __repr__(self) -> str:
        return f'Pose(id={self.id}, confidence={self.confidence:.3f}, keypoints={int(self.found.sum())}/18)'


def get_bbox(pose: Pose) -> Box:
    """(x, y, width, height) of the box around the found keypoints, in pixels; zeros when none was found."""
    points = pose.data[pose.found]
    if len(points) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def draw(img: np.ndarray, pose: Pose | Sequence[Pose], track: bool = True, thickness: int = 2) -> np.ndarray:
    """Draws one pose or a list of poses on a BGR image in place: limbs, keypoints and (with track) the ids, as
    labels above the people (see id_labels). Returns `img`."""
    poses = [pose] if isinstance(pose, Pose) else list(pose)
    scale = _scale(img.shape)
    for one in poses:
        points = np.round(one.data).astype(int)
        found = one.found
        for limb in SKELETON:
            a, b = LIMBS[limb]
            if found[a] and found[b]:
                cv2.line(img, tuple(points[a]), tuple(points[b]), LIMB_COLORS[limb], thickness * scale, cv2.LINE_AA)
        for index in np.flatnonzero(found):
            cv2.circle(img, tuple(points[index]), 3 * scale, KEYPOINT_COLORS[index], -1, cv2.LINE_AA)
    if track:
        for text, (x0, y0, x1, y1) in id_labels(poses, img.shape):
            cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), LABEL_BOX, -1)
            (_, height), _ = cv2.getTextSize(text, _FONT, _font_scale(scale), scale)
            cv2.putText(img, text, (x0 + _padding(scale), y0 + _padding(scale) + height), _FONT,
                        _font_scale(scale), LABEL_TEXT, scale, cv2.LINE_AA)
    return img


LABEL_BOX = (32, 32, 32)       # dark grey: the id label's filled box ...
LABEL_TEXT = (255, 255, 255)   # ... and its white text, legible on any ground
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _scale(image_shape: tuple[int, ...]) -> int:
    """Line widths and text sizes grow with the image, one step per 640 pixels."""
    return max(1, round(max(image_shape[:2]) / 640))


def _font_scale(scale: int) -> float:
    return 0.5 * scale


def _padding(scale: int) -> int:
    return 3 * scale


def id_labels(poses: Sequence[Pose], image_shape: tuple[int, ...]) -> list[tuple[str, LabelBox]]:
    """[(text, (x0, y0, x1, y1))]: the id labels `draw` puts on an image of `image_shape`, one per tracked pose
    with keypoints, in pixels (x1, y1 exclusive). Each sits just above its person's box, inside the image; a
    label that would overlap one placed before moves up (then down) by label heights until it is free."""
    scale = _scale(image_shape)
    height, width = image_shape[:2]
    placed: list[tuple[str, LabelBox]] = []
    tracked = [pose for pose in poses if pose.id >= 0 and pose.found.any()]
    for pose in sorted(tracked, key=lambda one: get_bbox(one)[1]):
        text = f'id {pose.id}'
        (text_width, text_height), baseline = cv2.getTextSize(text, _FONT, _font_scale(scale), scale)
        box_width = min(width, text_width + 2 * _padding(scale))
        box_height = min(height, text_height + baseline + 2 * _padding(scale))
        x, y, _, _ = get_bbox(pose)
        x0 = int(np.clip(x, 0, width - box_width))
        above = int(y) - box_height - 2 * scale
        step = box_height + scale
        candidates = [above - k * step for k in range(0, 40)] + [above + k * step for k in range(1, 40)]
        candidates = [int(np.clip(top, 0, height - box_height)) for top in candidates]
        free = [top for top in candidates
                if not any(_overlap((x0, top, x0 + box_width, top + box_height), box) for _, box in placed)]
        top = free[0] if free else candidates[0]
        placed.append((text, (x0, top, x0 + box_width, top + box_height)))
    return placed


def _overlap(a: LabelBox, b: LabelBox) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
