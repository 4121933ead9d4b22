"""COCO keypoint evaluation with pycocotools, results files, and the oracle-map measurement of a decoder.

The oracle-map measurement renders the ground truth of real annotations into the maps a perfect network
would output (the training targets, in the reference val.py's geometry), decodes them, and scores the
poses against the same annotations: it measures post-processing alone.
"""
import contextlib
import copy
import io
import json
import os
import warnings

import numpy as np

from openpose_ros.files import write_text
from openpose_ros.formats.coco import load_coco_keypoints, to_coco_results
from openpose_ros.keypoints import NUM_KEYPOINTS
from openpose_ros.training.targets import BASE_HEIGHT, PAF_THICKNESS, SIGMA, STRIDE, render_oracle_maps

METRICS = ('AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl')


@contextlib.contextmanager
def _quiet(verbose):
    """pycocotools prints progress and tables on stdout; keep them unless verbose."""
    if verbose:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def load_ground_truth(annotations, verbose=False):
    """A path or a COCO-format dict -> pycocotools COCO object (a COCO object is returned as is)."""
    from pycocotools.coco import COCO
    if isinstance(annotations, COCO):
        return annotations
    with _quiet(verbose):
        if isinstance(annotations, (str, os.PathLike)):
            return COCO(os.fspath(annotations))
        if isinstance(annotations, dict):
            coco = COCO()
            coco.dataset = copy.deepcopy(annotations)
            coco.createIndex()
            return coco
    raise TypeError(f'expected a path, a dict or a COCO object, got {type(annotations).__name__}')


def load_results(results):
    """A list of result dicts (copied) or the path of a results JSON file -> list of result dicts."""
    if isinstance(results, (str, os.PathLike)):
        with open(results, encoding='utf-8') as f:
            results = json.load(f)
    if not isinstance(results, (list, tuple)):
        raise TypeError(f'results must be a list of dicts or a path, got {type(results).__name__}')
    return copy.deepcopy(list(results))


def write_results(path, results):
    """Write COCO result dicts as JSON atomically: a temporary file beside ``path``, then a rename."""
    return write_text(path, json.dumps(list(results), default=_json_default))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f'{type(value).__name__} is not JSON serialisable')


def evaluate_keypoints(annotations, results, image_ids=None, verbose=False):
    """COCO keypoint AP/AR of results against annotations, with pycocotools' COCOeval(iouType='keypoints').

    annotations: path, COCO-format dict or pycocotools COCO object; results: list of result dicts or the
    path of a results JSON file (not modified); image_ids: the images to evaluate (default all annotated
    images, as COCOeval does). Returns {'AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl'}
    as floats (-1 where pycocotools finds nothing to measure, e.g. no medium people). Without results every
    metric is 0.0 and a warning says so. pycocotools' output is captured unless ``verbose``.
    """
    from pycocotools.cocoeval import COCOeval
    coco_gt = load_ground_truth(annotations, verbose)
    results = load_results(results)
    if image_ids is not None:
        image_ids = [int(i) for i in image_ids]
        unknown = set(image_ids) - set(coco_gt.getImgIds())
        if unknown:
            raise KeyError(f'image ids not in the annotations: {sorted(unknown)[:10]}')
        wanted = set(image_ids)
        results = [r for r in results if int(r['image_id']) in wanted]
    strangers = {int(r['image_id']) for r in results} - set(coco_gt.getImgIds())
    if strangers:
        raise ValueError(f'results for images not in the annotations: {sorted(strangers)[:10]}')
    if not results:
        warnings.warn('no keypoint results to evaluate: every metric is 0', RuntimeWarning, stacklevel=2)
        return {name: 0.0 for name in METRICS}
    with _quiet(verbose):
        coco_dt = coco_gt.loadRes(results)
        coco_eval = COCOeval(coco_gt, coco_dt, 'keypoints')
        if image_ids is not None:
            coco_eval.params.imgIds = image_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {name: float(value) for name, value in zip(METRICS, coco_eval.stats)}


def oracle_results(records, decoder=None, base_height=BASE_HEIGHT, stride=STRIDE, sigma=SIGMA,
                   paf_thickness=PAF_THICKNESS, noise_std=0.0, blur_sigma=0.0, seed=0, upsample_ratio=4,
                   offset=0.0, bbox=True):
    """Decode the oracle maps of ImageRecords and return the poses as COCO result dicts.

    decoder(heatmaps, pafs, stride=, upsample_ratio=) -> (keypoints (N, 18, 2) in network-input pixels, -1
    where missing, keypoint_scores (N, 18), pose_scores (N,)); default openpose_ros.inference.decode.decode_poses.
    noise_std adds Gaussian noise (seeded) to every heatmap and PAF channel; blur_sigma blurs every channel
    (in map pixels). offset and bbox are passed to to_coco_results.
    """
    if decoder is None:
        from openpose_ros.inference.decode import decode_poses as decoder
    rng = np.random.default_rng(seed)
    results = []
    for record in records:
        heatmaps, pafs, scale, pad = render_oracle_maps(record, base_height, stride, sigma, paf_thickness)
        if blur_sigma > 0:
            heatmaps, pafs = _blur(heatmaps, blur_sigma), _blur(pafs, blur_sigma)
        if noise_std > 0:
            heatmaps = (heatmaps + rng.normal(0.0, noise_std, heatmaps.shape)).astype(np.float32)
            pafs = (pafs + rng.normal(0.0, noise_std, pafs.shape)).astype(np.float32)
        keypoints, keypoint_scores, pose_scores = decoder(heatmaps, pafs, stride=stride,
                                                          upsample_ratio=upsample_ratio)
        keypoints = np.array(keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
        found = ~(keypoints == -1).all(axis=-1) & np.isfinite(keypoints).all(axis=-1)
        image_xy = (keypoints - (pad[1], pad[0])) / scale
        keypoints = np.where(found[..., None], image_xy, -1.0)
        results += to_coco_results(record.image_id, keypoints, keypoint_scores, pose_scores,
                                   offset=offset, bbox=bbox)
    return results


def _blur(maps, sigma):
    import cv2
    channels_last = np.ascontiguousarray(maps.transpose(1, 2, 0))
    blurred = cv2.GaussianBlur(channels_last, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return np.ascontiguousarray(blurred.reshape(channels_last.shape).transpose(2, 0, 1))


def evaluate_oracle_maps(annotations, decoder=None, image_ids=None, verbose=False, **options):
    """Oracle maps of an annotation file -> decoder -> pycocotools against the same annotations.

    ``options`` are those of ``oracle_results``. Returns evaluate_keypoints' dict plus 'people' (annotated
    people with keypoints on the evaluated images) and 'detections'.
    """
    coco_gt = load_ground_truth(annotations, verbose)
    records = load_coco_keypoints(coco_gt, image_ids)
    results = oracle_results(records, decoder, **options)
    metrics = evaluate_keypoints(coco_gt, results, image_ids, verbose)
    metrics['people'] = int(sum(r.num_people for r in records))
    metrics['detections'] = len(results)
    return metrics
