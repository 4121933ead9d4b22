"""Poses as plain JSON: `Pose` objects <-> dicts, per-image/per-frame records, and whole result documents.

The same format is written by the `infer` executable and read by offline evaluations. A pose is

    {"id": 3, "confidence": 0.81, "bbox": [x, y, w, h],
     "keypoints": [[x, y, score], ...18 rows in KEYPOINT_NAMES order...]}

in image pixels; a keypoint that was not found is written [-1, -1, 0], as `Pose` holds it. A frame record is

    {"file": "a.jpg" or "frame": 12, "stamp": 1.2, "width": 640, "height": 425, "poses": [...]}

and a document is {"format": FORMAT, "version": VERSION, "keypoint_names": [...], ..., "frames": [...]}.
Free of torch.
"""
import json
import math
from pathlib import Path

import numpy as np

from openpose_ros.files import write_text
from openpose_ros.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from openpose_ros.pose import MISSING, Pose

FORMAT = 'openpose_ros.poses'
VERSION = 1
COORDINATE_DECIMALS = 3  # a thousandth of a pixel: far below any keypoint's precision
SCORE_DECIMALS = 5


class ResultsFormatError(ValueError):
    """A JSON document or record that is not in this format; the message says what is wrong where."""


def _number(value, decimals):
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f'{value} is not a finite number')
    return round(value, decimals)


def pose_to_dict(pose):
    """A `Pose` -> a JSON-serialisable dict (see the module docstring)."""
    found = pose.found
    keypoints = []
    for index in range(NUM_KEYPOINTS):
        if found[index]:
            x, y = pose.data[index]
            keypoints.append([_number(x, COORDINATE_DECIMALS), _number(y, COORDINATE_DECIMALS),
                              _number(pose.keypoint_scores[index], SCORE_DECIMALS)])
        else:
            keypoints.append([float(MISSING), float(MISSING), 0.0])
    return {
        'id': int(pose.id),
        'confidence': _number(pose.confidence, SCORE_DECIMALS),
        'bbox': [_number(v, COORDINATE_DECIMALS) for v in pose.bbox],
        'keypoints': keypoints,
    }


def pose_from_dict(data, where='pose'):
    """A dict written by `pose_to_dict` -> `Pose`; ResultsFormatError naming `where` if it does not fit."""
    try:
        keypoints = np.asarray(data['keypoints'], np.float64)
        confidence = float(data['confidence'])
        track_id = int(data.get('id', MISSING))
    except (KeyError, TypeError, ValueError) as error:
        raise ResultsFormatError(f'{where}: not a pose record ({error!r})') from error
    if keypoints.shape != (NUM_KEYPOINTS, 3):
        raise ResultsFormatError(f'{where}: "keypoints" must be {NUM_KEYPOINTS} rows of [x, y, score], '
                                 f'got shape {keypoints.shape}')
    if not np.isfinite(keypoints).all() or not math.isfinite(confidence):
        raise ResultsFormatError(f'{where}: non-finite numbers')
    missing = keypoints[:, 0] < 0
    keypoints[missing, :2] = MISSING
    keypoints[missing, 2] = 0.0
    return Pose(keypoints[:, :2], confidence, keypoints[:, 2], id=track_id)


def frame_record(poses, stamp=None, file=None, frame=None, width=None, height=None):
    """The record of one image or video frame: where it came from, its stamp (seconds) and its poses."""
    record = {}
    if file is not None:
        record['file'] = str(file)
    if frame is not None:
        record['frame'] = int(frame)
    if stamp is not None:
        record['stamp'] = round(float(stamp), 6)
    if width is not None and height is not None:
        record['width'], record['height'] = int(width), int(height)
    record['poses'] = [pose_to_dict(pose) for pose in poses]
    return record


def poses_of(record, where='frame'):
    """The `Pose` objects of a frame record."""
    if not isinstance(record, dict) or not isinstance(record.get('poses'), list):
        raise ResultsFormatError(f'{where}: a frame record needs a "poses" list')
    return [pose_from_dict(pose, f'{where} pose {index}') for index, pose in enumerate(record['poses'])]


def document(frames, **metadata):
    """A whole result document: format tag, version, keypoint names, the given metadata, and the frames."""
    return {'format': FORMAT, 'version': VERSION, 'keypoint_names': list(KEYPOINT_NAMES), **metadata,
            'frames': list(frames)}


def write_document(path, doc):
    """Writes a document as JSON atomically (a temporary file beside `path`, then a rename)."""
    return write_text(path, _layout(doc))


def _layout(doc):
    """The document as JSON with one line per frame: readable, and compact for long videos."""
    head = {key: value for key, value in doc.items() if key != 'frames'}
    text = json.dumps(head, indent=1, allow_nan=False)
    frames = [json.dumps(frame, separators=(',', ':'), allow_nan=False) for frame in doc.get('frames', [])]
    body = '[\n' + ',\n'.join(frames) + '\n]' if frames else '[]'
    return text[:-2] + (',\n' if head else '\n') + f' "frames": {body}\n}}\n'


def read_document(path):
    """Reads and checks a result document; returns it with every frame's poses as `Pose` lists under 'poses'.

    The returned dict is the JSON document, except that each frame's 'poses' holds `Pose` objects.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as error:
        raise ResultsFormatError(f'{path}: cannot read a JSON document ({error})') from error
    if not isinstance(doc, dict) or doc.get('format') != FORMAT:
        raise ResultsFormatError(f'{path}: not an {FORMAT} document')
    if doc.get('version') != VERSION:
        raise ResultsFormatError(f'{path}: version {doc.get("version")!r} is not supported (this reads {VERSION})')
    if list(doc.get('keypoint_names', [])) != list(KEYPOINT_NAMES):
        raise ResultsFormatError(f'{path}: keypoint order differs from {list(KEYPOINT_NAMES)}')
    frames = doc.get('frames')
    if not isinstance(frames, list):
        raise ResultsFormatError(f'{path}: "frames" must be a list')
    for index, frame in enumerate(frames):
        frame['poses'] = poses_of(frame, f'{path} frame {index}')
    return doc
