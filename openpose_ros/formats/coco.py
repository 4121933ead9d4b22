"""COCO person keypoints in and out: annotation files -> per-image records of 18-keypoint people, and
decoded poses -> COCO result dicts for pycocotools.

Keypoint states follow COCO's visibility flags: 0 unlabelled (never rendered), 1 labelled but occluded,
2 labelled and visible. The neck, which COCO lacks, is the mean of the shoulders and is labelled only
where both shoulders are (visible where both are visible), as the reference's training labels make it.
"""
import copy
import json
import os
from dataclasses import dataclass, field

import numpy as np

from openpose_ros.keypoints import COCO_TO_OPENPOSE, NECK, NUM_KEYPOINTS

NUM_COCO_KEYPOINTS = len(COCO_TO_OPENPOSE)
PERSON_CATEGORY_ID = 1
_COCO_L_SHOULDER, _COCO_R_SHOULDER = 5, 6


@dataclass
class ImageRecord:
    """One image of a COCO keypoint annotation file.

    ``keypoints`` holds the people that have keypoint annotations (non-crowd, ``num_keypoints > 0``) as
    (N, 18, 3) float32 rows of x, y (image pixels, as annotated) and state (0, 1, 2 as described above).
    Crowd regions and people annotated without keypoints are kept as segmentations for loss masks.
    """
    image_id: int
    file_name: str
    width: int
    height: int
    keypoints: np.ndarray
    annotation_ids: np.ndarray
    bboxes: np.ndarray
    areas: np.ndarray
    crowd_segmentations: list = field(default_factory=list)
    unlabelled_segmentations: list = field(default_factory=list)

    @property
    def num_people(self):
        """The number of people with keypoint annotations (rows of ``keypoints``)."""
        return len(self.keypoints)

    def mask_segmentations(self, include_unlabelled=True):
        """Segmentations whose pixels a loss mask zeroes: crowds, and (unless told not to) people without keypoints."""
        return self.crowd_segmentations + (self.unlabelled_segmentations if include_unlabelled else [])

    def path(self, images_dir):
        """The image file's path (a str) in the folder `images_dir`."""
        return os.path.join(images_dir, self.file_name)


def coco_to_openpose(coco_keypoints, width=None, height=None):
    """COCO keypoints (N, 17, 3) or flat (N, 51) -> OpenPose keypoints (N, 18, 3) float32.

    As the reference's label conversion does: a keypoint at (0, 0) is unlabelled, and so (when the image
    size is given) is one outside the image; the neck is the shoulders' mean, labelled only where both
    shoulders are, visible only where both are visible, and unlabelled when it falls outside the image.
    """
    coco = np.asarray(coco_keypoints, dtype=np.float64).reshape(-1, NUM_COCO_KEYPOINTS, 3).copy()
    xy, state = coco[..., :2], coco[..., 2]
    unlabelled = (xy[..., 0] == 0) & (xy[..., 1] == 0)
    if width is not None and height is not None:
        unlabelled |= _outside(xy, width, height)
    state[unlabelled] = 0

    shoulders = coco[:, [_COCO_L_SHOULDER, _COCO_R_SHOULDER]]
    neck = np.empty((len(coco), 3))
    neck[:, :2] = shoulders[:, :, :2].mean(axis=1)
    both_labelled = (shoulders[:, :, 2] > 0).all(axis=1)
    both_visible = (shoulders[:, :, 2] == 2).all(axis=1)
    neck[:, 2] = np.where(both_labelled, np.where(both_visible, 2, 1), 0)
    if width is not None and height is not None:
        neck[_outside(neck[:, :2], width, height), 2] = 0

    out = np.zeros((len(coco), NUM_KEYPOINTS, 3))
    out[:, list(COCO_TO_OPENPOSE)] = coco
    out[:, NECK] = neck
    return out.astype(np.float32)


def _outside(xy, width, height):
    return (xy[..., 0] < 0) | (xy[..., 0] >= width) | (xy[..., 1] < 0) | (xy[..., 1] >= height)


def _dataset(annotations):
    """A path, a loaded dict or a pycocotools COCO object -> the annotation dict."""
    if isinstance(annotations, (str, os.PathLike)):
        with open(annotations, encoding='utf-8') as f:
            return json.load(f)
    if isinstance(annotations, dict):
        return annotations
    dataset = getattr(annotations, 'dataset', None)
    if isinstance(dataset, dict):
        return dataset
    raise TypeError(f'expected a path, a COCO dict or a pycocotools COCO object, got {type(annotations).__name__}')


def load_coco_keypoints(annotations, image_ids=None, category_id=PERSON_CATEGORY_ID):
    """Read a COCO person-keypoints annotation file (path, dict or COCO object) into ImageRecords.

    Every listed image gets a record, sorted by image id, images without people included (real negatives).
    ``image_ids`` restricts the records to those images (in the order given).
    """
    dataset = _dataset(annotations)
    images = {int(image['id']): image for image in dataset.get('images', [])}
    if image_ids is None:
        image_ids = sorted(images)
    else:
        image_ids = [int(i) for i in image_ids]
        unknown = [i for i in image_ids if i not in images]
        if unknown:
            raise KeyError(f'image ids not in the annotations: {unknown[:10]}')
    by_image = {i: [] for i in image_ids}
    for ann in dataset.get('annotations', []):
        if ann.get('category_id', category_id) == category_id and int(ann['image_id']) in by_image:
            by_image[int(ann['image_id'])].append(ann)

    records = []
    for image_id in image_ids:
        image = images[image_id]
        width, height = int(image['width']), int(image['height'])
        people, crowd, unlabelled = [], [], []
        for ann in by_image[image_id]:
            if ann.get('iscrowd', 0):
                crowd.append(copy.deepcopy(ann['segmentation']))
            elif ann.get('num_keypoints', 0) > 0 and 'keypoints' in ann:
                people.append(ann)
            elif ann.get('segmentation'):
                unlabelled.append(copy.deepcopy(ann['segmentation']))
        if people:
            keypoints = coco_to_openpose([p['keypoints'] for p in people], width, height)
        else:
            keypoints = np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
        records.append(ImageRecord(
            image_id=image_id,
            file_name=image['file_name'],
            width=width,
            height=height,
            keypoints=keypoints,
            annotation_ids=np.array([p['id'] for p in people], dtype=np.int64),
            bboxes=np.array([p['bbox'] for p in people], dtype=np.float32).reshape(-1, 4),
            areas=np.array([p.get('area', 0.0) for p in people], dtype=np.float32),
            crowd_segmentations=crowd,
            unlabelled_segmentations=unlabelled,
        ))
    return records


def to_coco_results(image_id, keypoints, keypoint_scores, pose_scores, offset=0.0, bbox=True,
                    category_id=PERSON_CATEGORY_ID):
    """Poses of one image -> COCO keypoint result dicts (a list, empty when there are no poses).

    keypoints: (N, 18, 2) in original image pixels, -1 (or NaN) where a keypoint is missing; keypoint_scores:
    (N, 18), 0 where missing; pose_scores: (N,), the pose score in [0, 1], written as the result's score.
    The neck is dropped and the other 17 keypoints reordered to COCO's. Found keypoints are shifted by
    ``offset`` pixels and flagged 1. The reference's val.py adds 0.5: its decoder places keypoints half an
    input pixel too low (upsampled pixel u taken at u * stride / ratio), which this offset compensates. This
    package's decoder maps map pixels to input pixels exactly, so it needs no offset (default 0; on oracle maps
    +0.5 costs 0.01-0.015 AP); missing ones are written as (0, 0, 0), as val.py writes them.
    Poses with no keypoint found are skipped.

    pycocotools' loadRes gives a keypoint result the box of all 17 keypoints as its 'bbox' and 'area',
    (0, 0) placeholders included, and COCOeval uses that area to ignore unmatched detections outside an area
    range (APm, APl). With ``bbox`` (default) each result also carries 'bbox', the box [x, y, w, h] of its
    found keypoints; loadRes then takes the area from that box (its box branch comes first; OKS still reads
    only the keypoints), so placeholders neither stretch the box nor, being far away, take OKS credit from
    labelled keypoints as placeholders inside the box would. ``bbox=False`` writes val.py's results exactly.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    keypoint_scores = np.asarray(keypoint_scores, dtype=np.float64).reshape(-1, NUM_KEYPOINTS)
    pose_scores = np.asarray(pose_scores, dtype=np.float64).reshape(-1)
    if not len(keypoints) == len(keypoint_scores) == len(pose_scores):
        raise ValueError(f'{len(keypoints)} poses, {len(keypoint_scores)} keypoint score rows, '
                         f'{len(pose_scores)} pose scores')
    coco_xy = keypoints[:, list(COCO_TO_OPENPOSE)]
    found = (np.isfinite(coco_xy).all(axis=-1) & ~(coco_xy == -1).all(axis=-1)
             & (keypoint_scores[:, list(COCO_TO_OPENPOSE)] > 0))
    results = []
    for xy, ok, score in zip(coco_xy, found, pose_scores):
        if not ok.any():
            continue
        out = np.zeros((NUM_COCO_KEYPOINTS, 3))
        out[ok, :2] = xy[ok] + offset
        out[ok, 2] = 1
        result = {
            'image_id': int(image_id),
            'category_id': int(category_id),
            'keypoints': [float(v) for v in out.reshape(-1)],
            'score': float(score),
        }
        if bbox:
            low, high = out[ok, :2].min(axis=0), out[ok, :2].max(axis=0)
            result['bbox'] = [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])]
        results.append(result)
    return results


def poses_to_results(image_id, poses):
    """Pose objects (`.data`, `.keypoint_scores`, `.confidence`) of one image -> COCO keypoint result dicts
    (see to_coco_results)."""
    if not poses:
        return []
    return to_coco_results(image_id, np.stack([pose.data for pose in poses]),
                           np.stack([pose.keypoint_scores for pose in poses]),
                           np.array([pose.confidence for pose in poses]))
