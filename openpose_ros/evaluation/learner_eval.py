"""COCO keypoint evaluation of a learner: inference over the images of an annotation file, COCO results
written atomically, pycocotools' AP/AR.

Inference goes through the learner's estimator, so its backend (torch or ONNX Runtime), base height,
``scales`` (multiscale) and decoder settings are the ones measured. Tracking and smoothing are off.
"""
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from openpose_ros.evaluation.metrics import evaluate_keypoints, load_ground_truth, write_results
from openpose_ros.formats.coco import load_coco_keypoints, to_coco_results
from openpose_ros.pose import draw
from openpose_ros.training.datasets import resolve_coco

SUBSET_SEED = 0
VISUALIZATION_FOLDER = 'visualization'


def select_images(image_ids, use_subset=True, subset_size=250, seed=SUBSET_SEED):
    """All image ids, or a fixed random subset of ``subset_size`` of them (OpenDR's val subset), sorted."""
    image_ids = sorted(int(i) for i in image_ids)
    if not use_subset or subset_size >= len(image_ids):
        return image_ids
    if subset_size <= 0:
        raise ValueError(f'subset_size must be > 0, got {subset_size}')
    chosen = np.random.default_rng(seed).choice(len(image_ids), size=int(subset_size), replace=False)
    return sorted(image_ids[i] for i in chosen)


def has_display():
    """Whether windows can be shown (an X11 or Wayland display on Linux; assumed elsewhere)."""
    if os.name == 'posix' and not os.environ.get('DISPLAY') and not os.environ.get('WAYLAND_DISPLAY'):
        return sys.platform == 'darwin'
    return True


def poses_to_results(image_id, poses):
    """Pose objects of one image -> COCO keypoint result dicts (17 keypoints, at the poses' own coordinates: this
    decoder needs no offset, see formats.coco.to_coco_results)."""
    if not poses:
        return []
    keypoints = np.stack([pose.data for pose in poses])
    keypoint_scores = np.stack([pose.keypoint_scores for pose in poses])
    pose_scores = np.array([pose.confidence for pose in poses])
    return to_coco_results(image_id, keypoints, keypoint_scores, pose_scores)


def _show_or_write(image, poses, file_name, folder, display):
    canvas = draw(image.copy(), poses, track=False)
    if display:
        try:
            cv2.imshow('openpose_ros evaluation', canvas)
            cv2.waitKey(1)
            return
        except cv2.error:
            pass  # an OpenCV without GUI support: write instead
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / file_name), canvas)


def evaluate(learner, dataset, silent=False, verbose=True, use_subset=True, subset_size=250,
             images_folder_name='val2017', annotations_filename='person_keypoints_val2017.json',
             upsample_ratio=4, output_path=None):
    """Runs the learner over the dataset's images and scores the poses with pycocotools.

    ``dataset``: an ExternalDataset (type COCO) or a datasets.CocoKeypoints. The detections are written to
    ``output_path`` (default ``temp_path/output_name``). With ``learner.visualize`` each image is shown with
    its poses, or, without a display, written to ``temp_path/visualization/``. Returns
    {'AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl'}.
    """
    from tqdm import tqdm

    coco = resolve_coco(dataset, images_folder_name, annotations_filename)
    quiet = silent or not verbose
    ground_truth = load_ground_truth(coco.annotations, verbose=not quiet)
    image_ids = select_images(ground_truth.getImgIds(), use_subset, subset_size)
    records = load_coco_keypoints(ground_truth, image_ids)
    if learner.ort_session is None:
        learner.model.eval()
    estimator = learner.estimator
    display = learner.visualize and has_display()
    visualization = Path(learner.temp_path) / VISUALIZATION_FOLDER
    results = []
    for record in tqdm(records, disable=silent, desc='evaluation', leave=False):
        path = record.path(coco.images_dir)
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f'cannot read image {path}')
        poses = estimator.detect(image, upsample_ratio)
        results += poses_to_results(record.image_id, poses)
        if learner.visualize:
            _show_or_write(image, poses, record.file_name, visualization, display)
    output_path = Path(output_path) if output_path else Path(learner.temp_path) / learner.output_name
    write_results(output_path, results)
    return evaluate_keypoints(ground_truth, results, image_ids=image_ids, verbose=not quiet)
