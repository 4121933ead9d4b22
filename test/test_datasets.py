"""Training datasets (openpose_ros.training.datasets) on real COCO images: layouts, samples, seeded draws,
augmented targets and keypoints, flips and crowd masks."""
import math
import os

import cv2
import numpy as np
import pytest

from conftest import COCO, MINI_TRAIN_ANNOTATIONS
from openpose_ros.evaluation.metrics import evaluate_keypoints
from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.formats.coco import to_coco_results
from openpose_ros.inference.decode import decode_poses
from openpose_ros.keypoints import COCO_TO_OPENPOSE, FLIP_PAIRS, KEYPOINT_NAMES
from openpose_ros.training.datasets import Augmentation, CocoTrainDataset, ExternalDataset, resolve_coco, sample_people
from openpose_ros.training.targets import segmentation_mask
from test_trainer import IMAGE_IDS, MINI, TRAIN_IMAGES, small_dataset

pytestmark = pytest.mark.usefixtures('one_torch_thread')


# --- data ---------------------------------------------------------------------------------------------
def test_external_dataset_resolves_both_layouts(tmp_path):
    coco = resolve_coco(ExternalDataset(MINI), 'train2017', 'person_keypoints_train2017.json')  # annotations/
    assert coco.images_dir == str(TRAIN_IMAGES) and str(coco.annotations).endswith('person_keypoints_train2017.json')
    flat = resolve_coco(ExternalDataset(COCO / 'mmpose-tests'), '.', 'test_coco.json')  # OpenDR's: beside
    assert os.path.isfile(flat.annotations)
    with pytest.raises(FileNotFoundError, match='val2017'):
        resolve_coco(ExternalDataset(tmp_path), 'val2017', 'x.json')
    with pytest.raises(ValueError, match='COCO'):
        resolve_coco(ExternalDataset(MINI, 'VOC'), 'train2017', 'person_keypoints_train2017.json')


def test_samples_are_the_references_people_and_shapes():
    dataset = CocoTrainDataset(TRAIN_IMAGES, MINI_TRAIN_ANNOTATIONS)
    records = load_coco_keypoints(str(MINI_TRAIN_ANNOTATIONS))
    # One sample per person with >= 5 keypoints and area >= 32 x 32, not next to an already chosen one.
    assert len(dataset) == sum(len(sample_people(r)) for r in records) and 40 < len(dataset) < 86
    image, heatmaps, pafs, mask = dataset[0]
    assert image.shape == (3, 368, 368) and heatmaps.shape == (19, 46, 46) and pafs.shape == (38, 46, 46)
    assert mask.shape == (1, 46, 46) and image.dtype == heatmaps.dtype == np.float32
    assert -0.51 <= image.min() and image.max() < 0.5


def test_draws_depend_on_seed_epoch_and_index_only():
    dataset = small_dataset()
    first = dataset[2][0]
    dataset[0], dataset[3]  # other samples drawn in between change nothing
    assert np.array_equal(dataset[2][0], first)
    dataset.set_epoch(1)
    assert not np.array_equal(dataset[2][0], first)
    dataset.set_epoch(0)
    assert np.array_equal(dataset[2][0], first)
    assert not np.array_equal(small_dataset(seed=1)[2][0], first)


def _crop_ground_truth(dataset, indices):
    """COCO ground truth of augmented samples in crop pixels, one image per sample. People cut by the crop's
    border are ignored (iscrowd): what the decoder makes of fragments is not the augmentation's business."""
    crop_h, crop_w = dataset.augmentation.crop_size
    images, annotations, results = [], [], []
    for index in indices:
        crop, keypoints, mask, matrix, _ = dataset.sample(index)
        record = dataset.records[dataset.samples[index][0]]
        images.append({'id': index + 1, 'width': crop_w, 'height': crop_h, 'file_name': f'{index}.jpg'})
        area_scale = abs(np.linalg.det(matrix[:, :2]))
        for person, points in enumerate(keypoints):
            inside = (points[:, 0] >= 0) & (points[:, 0] < crop_w) & (points[:, 1] >= 0) & (points[:, 1] < crop_h)
            coco = points[list(COCO_TO_OPENPOSE)].copy()
            labelled = coco[:, 2] > 0
            cut = bool((labelled & ~inside[list(COCO_TO_OPENPOSE)]).any())
            coco[~(inside[list(COCO_TO_OPENPOSE)] & labelled), :] = 0
            if (coco[:, 2] > 0).sum() == 0:
                continue
            annotations.append({'id': len(annotations) + 1, 'image_id': index + 1, 'category_id': 1,
                                'iscrowd': int(cut),
                                'keypoints': coco.reshape(-1).tolist(), 'num_keypoints': int((coco[:, 2] > 0).sum()),
                                'area': float(record.areas[person] * area_scale),
                                'bbox': [0, 0, 1, 1]})
        _, heatmaps, pafs, _ = dataset[index]
        found, scores, pose_scores = decode_poses(heatmaps, pafs, stride=dataset.stride)
        results += to_coco_results(index + 1, found, scores, pose_scores, offset=0.0)
    ground_truth = {'images': images, 'annotations': annotations,
                    'categories': [{'id': 1, 'name': 'person', 'keypoints': [], 'skeleton': []}]}
    return ground_truth, results


def test_augmented_targets_decode_back_to_the_augmented_people():
    """Scale, rotation, crop and flip applied to a real image, its annotations and its targets agree: the
    decoder finds the moved people in the rendered maps where the moved annotations say they are."""
    augmentation = Augmentation(crop_size=(368, 368), max_rotation=40.0, flip_prob=0.5, scale_range=(0.8, 1.1))
    dataset = CocoTrainDataset(TRAIN_IMAGES, MINI_TRAIN_ANNOTATIONS, augmentation,
                               image_ids=IMAGE_IDS + [790, 183872], seed=3)
    flips = [dataset.sample(i)[4] for i in range(len(dataset))]
    assert any(flips) and not all(flips)
    ground_truth, results = _crop_ground_truth(dataset, range(len(dataset)))
    metrics = evaluate_keypoints(ground_truth, results)
    whole = sum(1 - a['iscrowd'] for a in ground_truth['annotations'])
    print(f"augmented oracle AP {metrics['AP']:.3f} AR {metrics['AR']:.3f} on {len(dataset)} samples, "
          f"{whole} people inside their crop")
    assert whole >= 10
    assert metrics['AP'] > 0.95 and metrics['AR'] > 0.95


def test_augmented_keypoints_stay_on_their_image_content():
    """The image and the keypoints go through the same warp: the crop's colours at the moved keypoints are the
    original's at the annotated ones (up to resampling), and clearly not those 12 pixels away."""
    augmentation = Augmentation(crop_size=(368, 368), max_rotation=40.0, flip_prob=0.5, scale_range=(1.5, 2.0))
    dataset = CocoTrainDataset(TRAIN_IMAGES, MINI_TRAIN_ANNOTATIONS, augmentation, image_ids=IMAGE_IDS, seed=1)
    errors, shifted = [], []
    for index in range(len(dataset)):
        crop, keypoints, _, matrix, flip = dataset.sample(index)
        record = dataset.records[dataset.samples[index][0]]
        scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
        original = cv2.GaussianBlur(dataset.read_image(record).astype(np.float32), (0, 0), 2)
        moved = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), 2 * scale)
        source = record.keypoints[:, list(FLIP_PAIRS)] if flip else record.keypoints
        for (x, y, state), (ox, oy, _) in zip(keypoints.reshape(-1, 3), source.reshape(-1, 3)):
            if state > 0 and 20 <= x < 348 and 20 <= y < 348 and 0 <= ox < record.width - 16 \
                    and 0 <= oy < record.height:
                here = moved[int(round(y)), int(round(x))]
                errors.append(np.abs(here - original[int(round(oy)), int(round(ox))]).mean())
                shifted.append(np.abs(here - original[int(round(oy)), int(round(ox)) + 12]).mean())
    assert len(errors) > 20
    print(f'colour error at the keypoints {np.median(errors):.1f}, 12 px away {np.median(shifted):.1f}')
    assert np.median(errors) < 0.25 * np.median(shifted)


def test_flip_mirrors_the_image_and_swaps_left_and_right():
    plain = small_dataset(Augmentation.none(crop_size=(256, 392)))
    flipped = small_dataset(Augmentation(crop_size=(256, 392), sample='image', scale_range=(1, 1), max_rotation=0,
                                         center_perturbation=0, flip_prob=1.0))
    crop, keypoints, _, _, flip = plain.sample(0)
    crop_f, keypoints_f, _, _, flip_f = flipped.sample(0)
    assert not flip and flip_f
    assert np.abs(crop_f.astype(int) - crop[:, ::-1].astype(int)).max() <= 1
    r_sho, l_sho = KEYPOINT_NAMES.index('r_sho'), KEYPOINT_NAMES.index('l_sho')
    person = keypoints[:, [r_sho, l_sho], 2].min(axis=1).argmax()
    # The mirrored right shoulder is the original left one, mirrored: the labels follow the anatomy.
    assert keypoints_f[person, r_sho, 0] == pytest.approx(391 - keypoints[person, l_sho, 0], abs=1e-6)
    assert np.sign(keypoints_f[person, r_sho, 0] - keypoints_f[person, l_sho, 0]) == \
        np.sign(keypoints[person, r_sho, 0] - keypoints[person, l_sho, 0])
    _, heatmaps, _, _ = plain[0]
    _, heatmaps_f, _, _ = flipped[0]
    assert np.allclose(heatmaps_f[r_sho], heatmaps[l_sho][:, ::-1], atol=0.05)


def test_crowds_are_masked_where_they_are():
    # 129648 has a crowd region: after the warp the mask is 0 on it and 1 elsewhere, as on the original.
    dataset = CocoTrainDataset(TRAIN_IMAGES, MINI_TRAIN_ANNOTATIONS, Augmentation.none(crop_size=(256, 384)),
                               image_ids=[129648])
    crop, _, mask, matrix, _ = dataset.sample(0)
    record = dataset.records[0]
    original = segmentation_mask(record.mask_segmentations(), record.height, record.width)
    assert 0 < (mask < 0.5).mean() < 0.5
    ys, xs = np.nonzero(original < 0.5)
    moved = np.stack([xs, ys], 1) @ matrix[:, :2].T + matrix[:, 2]
    inside = (moved[:, 0] >= 1) & (moved[:, 0] < 383) & (moved[:, 1] >= 1) & (moved[:, 1] < 255)
    values = mask[np.round(moved[inside, 1]).astype(int), np.round(moved[inside, 0]).astype(int)]
    assert (values < 0.5).mean() > 0.9
    assert dataset[0][3].min() < 0.5
