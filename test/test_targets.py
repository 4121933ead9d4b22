"""The vectorised target generator against the reference's own per-pixel loops, on real COCO annotations.

The oracle below is a port of the reference training code (datasets/coco.py, datasets/transformations.py
ConvertKeypoints, scripts/prepare_train_labels.py): slow Python loops, kept here only to check the library.
"""
import json
import math
import os

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.keypoints import LIMBS, NECK, NUM_HEATMAPS, NUM_KEYPOINTS, NUM_PAFS
from openpose_ros.training.targets import (downsample_mask, generate_targets, keypoint_heatmaps, oracle_geometry,
                                           part_affinity_fields, record_targets, render_oracle_maps, segmentation_mask)

DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'coco')
ANNOTATION_FILES = {
    'mmpose-tests': os.path.join(DATA, 'mmpose-tests', 'test_coco.json'),
    'coco-mini-val': os.path.join(DATA, 'coco-mini', 'annotations', 'person_keypoints_val2017.json'),
    'coco-mini-train': os.path.join(DATA, 'coco-mini', 'annotations', 'person_keypoints_train2017.json'),
    'lhpe-val-subset': os.path.join(DATA, 'lhpe-val-subset', 'val_subset.json'),
}
TOLERANCE = 1e-5


# ---------------------------------------------------------------------------------------------------------
# The reference, ported loop for loop.

def ref_prepare_keypoints(coco_keypoints):
    """prepare_train_labels.py: COCO v=1 -> 0 (occluded), v=2 -> 1 (visible), otherwise 2 (not labelled)."""
    keypoints = []
    for i in range(len(coco_keypoints) // 3):
        keypoint = [coco_keypoints[i * 3], coco_keypoints[i * 3 + 1], 2]
        if coco_keypoints[i * 3 + 2] == 1:
            keypoint[2] = 0
        elif coco_keypoints[i * 3 + 2] == 2:
            keypoint[2] = 1
        keypoints.append(keypoint)
    return keypoints


def ref_convert_keypoints(keypoints, w, h):
    """transformations.ConvertKeypoints: (0, 0) and outside -> not labelled; COCO -> OpenPose order; neck."""
    for keypoint in keypoints:
        if keypoint[0] == keypoint[1] == 0:
            keypoint[2] = 2
        if keypoint[0] < 0 or keypoint[0] >= w or keypoint[1] < 0 or keypoint[1] >= h:
            keypoint[2] = 2
    reorder_map = [1, 7, 9, 11, 6, 8, 10, 13, 15, 17, 12, 14, 16, 3, 2, 5, 4]
    converted = list(keypoints[i - 1] for i in reorder_map)
    converted.insert(1, [(keypoints[5][0] + keypoints[6][0]) / 2, (keypoints[5][1] + keypoints[6][1]) / 2, 0])
    if keypoints[5][2] == 2 or keypoints[6][2] == 2:
        converted[1][2] = 2
    elif keypoints[5][2] == 1 and keypoints[6][2] == 1:
        converted[1][2] = 1
    if converted[1][0] < 0 or converted[1][0] >= w or converted[1][1] < 0 or converted[1][1] >= h:
        converted[1][2] = 2
    return converted


def ref_add_gaussian(keypoint_map, x, y, stride, sigma):
    n_sigma = 4
    tl = [int(x - n_sigma * sigma), int(y - n_sigma * sigma)]
    tl[0] = max(tl[0], 0)
    tl[1] = max(tl[1], 0)
    br = [int(x + n_sigma * sigma), int(y + n_sigma * sigma)]
    map_h, map_w = keypoint_map.shape
    br[0] = min(br[0], map_w * stride)
    br[1] = min(br[1], map_h * stride)
    shift = stride / 2 - 0.5
    for map_y in range(tl[1] // stride, br[1] // stride):
        for map_x in range(tl[0] // stride, br[0] // stride):
            d2 = (map_x * stride + shift - x) * (map_x * stride + shift - x) + \
                (map_y * stride + shift - y) * (map_y * stride + shift - y)
            exponent = d2 / 2 / sigma / sigma
            if exponent > 4.6052:
                continue
            keypoint_map[map_y, map_x] += math.exp(-exponent)
            if keypoint_map[map_y, map_x] > 1:
                keypoint_map[map_y, map_x] = 1


def ref_keypoint_maps(people, n_rows, n_cols, stride, sigma):
    keypoint_maps = np.zeros((NUM_KEYPOINTS + 1, n_rows // stride, n_cols // stride), np.float32)
    for keypoint_idx in range(NUM_KEYPOINTS):
        for person in people:  # the reference's label first, then its 'processed_other_annotations'
            keypoint = person[keypoint_idx]
            if keypoint[2] <= 1:
                ref_add_gaussian(keypoint_maps[keypoint_idx], keypoint[0], keypoint[1], stride, sigma)
    keypoint_maps[-1] = 1 - keypoint_maps.max(axis=0)
    return keypoint_maps


def ref_set_paf(paf_map, x_a, y_a, x_b, y_b, stride, thickness):
    x_a /= stride
    y_a /= stride
    x_b /= stride
    y_b /= stride
    x_ba = x_b - x_a
    y_ba = y_b - y_a
    _, h_map, w_map = paf_map.shape
    x_min = int(max(min(x_a, x_b) - thickness, 0))
    x_max = int(min(max(x_a, x_b) + thickness, w_map))
    y_min = int(max(min(y_a, y_b) - thickness, 0))
    y_max = int(min(max(y_a, y_b) + thickness, h_map))
    norm_ba = (x_ba * x_ba + y_ba * y_ba) ** 0.5
    if norm_ba < 1e-7:
        return
    x_ba /= norm_ba
    y_ba /= norm_ba
    for y in range(y_min, y_max):
        for x in range(x_min, x_max):
            x_ca = x - x_a
            y_ca = y - y_a
            d = math.fabs(x_ca * y_ba - y_ca * x_ba)
            if d <= thickness:
                paf_map[0, y, x] = x_ba
                paf_map[1, y, x] = y_ba


def ref_paf_maps(people, n_rows, n_cols, stride, thickness):
    paf_maps = np.zeros((len(LIMBS) * 2, n_rows // stride, n_cols // stride), np.float32)
    for paf_idx, (a, b) in enumerate(LIMBS):
        for person in people:
            keypoint_a, keypoint_b = person[a], person[b]
            if keypoint_a[2] <= 1 and keypoint_b[2] <= 1:
                ref_set_paf(paf_maps[paf_idx * 2:paf_idx * 2 + 2], keypoint_a[0], keypoint_a[1],
                            keypoint_b[0], keypoint_b[1], stride, thickness)
    return paf_maps


def ref_get_mask(segmentations, mask):
    for segmentation in segmentations:
        rle = mask_utils.frPyObjects(segmentation, mask.shape[0], mask.shape[1])
        mask[mask_utils.decode(rle) > 0.5] = 0
    return mask


def ref_people(dataset, image_id):
    """The reference's labels of one image: people with keypoints (not crowd), converted, in file order."""
    image = next(i for i in dataset['images'] if i['id'] == image_id)
    annotations = [a for a in dataset['annotations']
                   if a['image_id'] == image_id and a['num_keypoints'] != 0 and not a['iscrowd']]
    return [ref_convert_keypoints(ref_prepare_keypoints(a['keypoints']), image['width'], image['height'])
            for a in annotations]


def ref_crowd_segmentations(dataset, image_id):
    return [a['segmentation'] for a in dataset['annotations'] if a['image_id'] == image_id and a['iscrowd']]


# ---------------------------------------------------------------------------------------------------------

def _load(name):
    with open(ANNOTATION_FILES[name], encoding='utf-8') as f:
        dataset = json.load(f)
    return dataset, load_coco_keypoints(dataset)


def _scaled(people, scale, dx, dy):
    return [[[k[0] * scale + dx, k[1] * scale + dy, k[2]] for k in person] for person in people]


def _as_array(people):
    """The reference's states (0 occluded, 1 visible, 2 unlabelled) -> ours (1, 2, 0)."""
    array = np.array(people, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    array[:, :, 2] = np.select([array[:, :, 2] == 0, array[:, :, 2] == 1], [1, 2], 0)
    return array


@pytest.mark.parametrize('name', ['mmpose-tests', 'coco-mini-val', 'coco-mini-train'])
def test_records_match_reference_labels(name):
    dataset, records = _load(name)
    for record in records:
        expected = ref_people(dataset, record.image_id)
        assert record.num_people == len(expected)
        if expected:
            assert np.array_equal(record.keypoints[:, :, :2], np.array(expected, np.float32)[:, :, :2])
            assert np.array_equal(record.keypoints[:, :, 2], _as_array(expected)[:, :, 2])


@pytest.mark.parametrize('name', ['mmpose-tests', 'coco-mini-val', 'coco-mini-train'])
@pytest.mark.parametrize('stride', [8, 16])
def test_maps_equal_reference_loops_at_image_resolution(name, stride):
    dataset, records = _load(name)
    checked = 0
    for record in records:
        people = ref_people(dataset, record.image_id)
        if not people:
            continue
        heatmaps = keypoint_heatmaps(record.keypoints, record.height, record.width, stride)
        pafs = part_affinity_fields(record.keypoints, record.height, record.width, stride)
        expected_heatmaps = ref_keypoint_maps(people, record.height, record.width, stride, 7)
        expected_pafs = ref_paf_maps(people, record.height, record.width, stride, 1)
        assert heatmaps.dtype == pafs.dtype == np.float32
        assert heatmaps.shape == expected_heatmaps.shape == (NUM_HEATMAPS, record.height // stride,
                                                             record.width // stride)
        assert pafs.shape == expected_pafs.shape == (NUM_PAFS,) + heatmaps.shape[1:]
        assert np.abs(heatmaps - expected_heatmaps).max() < TOLERANCE
        assert np.abs(pafs - expected_pafs).max() < TOLERANCE
        checked += expected_heatmaps[:NUM_KEYPOINTS].max() > 0.5 and np.abs(expected_pafs).max() > 0.5
    assert checked >= 4  # images with real content on both kinds of map


def test_maps_equal_reference_loops_in_oracle_geometry_and_crops():
    """Scaled and shifted people (partly outside the input, as after the reference's crop), other sigmas."""
    dataset, records = _load('coco-mini-train')
    checked = 0
    for record in records:
        people = ref_people(dataset, record.image_id)
        if not people:
            continue
        scale, pad, (input_h, input_w) = oracle_geometry(record.height, record.width)
        shifted = _scaled(people, scale, pad[1], pad[0])
        heatmaps, pafs, scale2, pad2 = render_oracle_maps(record)
        assert (scale2, pad2) == (scale, pad)
        assert np.abs(heatmaps - ref_keypoint_maps(shifted, input_h, input_w, 8, 7)).max() < TOLERANCE
        assert np.abs(pafs - ref_paf_maps(shifted, input_h, input_w, 8, 1)).max() < TOLERANCE
        # A 368 x 368 crop centred on the first person: many keypoints fall outside, some on the edges.
        x0, y0 = np.array(people[0])[:, :2].mean(axis=0) - 184
        cropped = _scaled(people, 1.0, -x0, -y0)
        ours = _as_array(cropped)
        for sigma, thickness in ((7, 1), (5.5, 1.5)):
            targets = generate_targets(ours, 368, 368, 8, sigma, thickness)
            assert np.abs(targets.heatmaps - ref_keypoint_maps(cropped, 368, 368, 8, sigma)).max() < TOLERANCE
            assert np.abs(targets.pafs - ref_paf_maps(cropped, 368, 368, 8, thickness)).max() < TOLERANCE
        checked += 1
    assert checked >= 10


def test_overlapping_people_overwrite_pafs_and_sum_heatmaps():
    """Where people's limbs of one type overlap the later person's vector is written (no averaging), and
    Gaussians of one keypoint type add up, clipped at 1, as in the reference; checked on real crowded images
    against the composition of the people rendered one at a time."""
    overlaps = clipped = 0
    for name in ('coco-mini-train', 'coco-mini-val', 'mmpose-tests'):
        _, records = _load(name)
        for record in records:
            if record.num_people < 2:
                continue
            h, w = record.height, record.width
            pafs = part_affinity_fields(record.keypoints, h, w)
            heatmaps = keypoint_heatmaps(record.keypoints, h, w)
            composed = np.zeros_like(pafs)
            covers = np.zeros(pafs.shape[:1] + pafs.shape[1:], int)
            summed = np.zeros_like(heatmaps[:NUM_KEYPOINTS], dtype=np.float64)
            for person in record.keypoints:
                alone = part_affinity_fields(person[None], h, w)
                on = np.repeat((alone[0::2] != 0) | (alone[1::2] != 0), 2, axis=0)
                composed = np.where(on, alone, composed)
                covers += on
                summed += keypoint_heatmaps(person[None], h, w)[:NUM_KEYPOINTS]
            assert np.abs(pafs - composed).max() < TOLERANCE
            assert np.abs(heatmaps[:NUM_KEYPOINTS] - np.minimum(summed, 1)).max() < TOLERANCE
            overlaps += int((covers > 1).sum())
            clipped += int((summed > 1).sum())
    assert overlaps > 20 and clipped > 20  # the data do exercise both rules


def test_neck_only_where_both_shoulders_are_labelled():
    dataset, records = _load('coco-mini-train')
    one_shoulder = both = 0
    for record in records:
        for person in record.keypoints:
            r_sho, l_sho, neck = person[2], person[5], person[NECK]
            if (r_sho[2] > 0) != (l_sho[2] > 0):
                assert neck[2] == 0
                one_shoulder += 1
                # Alone on a map, that person has no neck at all.
                heatmaps = keypoint_heatmaps(person[None], record.height, record.width)
                assert heatmaps[NECK].max() == 0.0
                assert heatmaps[2].max() > 0.5 or heatmaps[5].max() > 0.5
                pafs = part_affinity_fields(person[None], record.height, record.width)
                for k, limb in enumerate(LIMBS):
                    if NECK in limb:
                        assert not pafs[2 * k:2 * k + 2].any()
            elif r_sho[2] > 0 and l_sho[2] > 0:
                assert neck[2] == (2 if r_sho[2] == l_sho[2] == 2 else 1)
                assert np.allclose(neck[:2], (r_sho[:2] + l_sho[:2]) / 2)
                both += 1
    assert one_shoulder >= 1 and both >= 20


def test_crowd_mask_equals_reference():
    for name in ('coco-mini-train', 'coco-mini-val', 'lhpe-val-subset'):
        dataset, records = _load(name)
        for record in records:
            crowd = ref_crowd_segmentations(dataset, record.image_id)
            if not crowd:
                continue
            full = ref_get_mask(crowd, np.ones((record.height, record.width), np.float32))
            assert full.min() == 0.0
            ours = segmentation_mask(record.crowd_segmentations, record.height, record.width)
            assert np.array_equal(ours, full)
            rows, cols = record.height // 8, record.width // 8
            expected = cv2.resize(full[:rows * 8, :cols * 8], None, fx=1 / 8, fy=1 / 8,
                                  interpolation=cv2.INTER_AREA)
            targets = record_targets(record, mask_unlabelled=False)
            assert targets.mask.shape == (rows, cols) == targets.heatmaps.shape[1:]
            assert np.abs(targets.mask - expected).max() < TOLERANCE
            assert np.abs(downsample_mask(full, 8) - expected).max() < TOLERANCE


def test_people_without_keypoints_are_masked():
    dataset, records = _load('mmpose-tests')
    masked = 0
    for record in records:
        if not record.unlabelled_segmentations:
            continue
        with_people = record_targets(record).mask
        crowd_only = record_targets(record, mask_unlabelled=False).mask
        expected = segmentation_mask(record.unlabelled_segmentations, record.height, record.width)
        assert expected.min() == 0.0
        assert np.abs(with_people - downsample_mask(expected, 8)).max() < TOLERANCE
        assert (with_people < 1).sum() > 0 and (crowd_only == 1).all()
        masked += 1
    assert masked >= 1


def test_mask_accepts_polygons_rle_and_compressed_rle():
    dataset, records = _load('lhpe-val-subset')
    record = next(r for r in records if r.crowd_segmentations and r.unlabelled_segmentations)
    h, w = record.height, record.width
    rle = record.crowd_segmentations[0]
    compressed = mask_utils.frPyObjects(rle, h, w)
    polygon = record.unlabelled_segmentations[0]
    assert isinstance(polygon, list) and isinstance(rle['counts'], list)
    assert np.array_equal(segmentation_mask([rle], h, w), segmentation_mask([compressed], h, w))
    decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon, h, w)))
    assert np.array_equal(segmentation_mask([polygon], h, w), 1 - decoded.astype(np.float32))


def test_no_people_gives_background_only():
    heatmaps = keypoint_heatmaps(np.zeros((0, NUM_KEYPOINTS, 3)), 368, 496)
    pafs = part_affinity_fields(np.zeros((0, NUM_KEYPOINTS, 3)), 368, 496)
    assert heatmaps.shape == (NUM_HEATMAPS, 46, 62) and pafs.shape == (NUM_PAFS, 46, 62)
    assert not heatmaps[:NUM_KEYPOINTS].any() and (heatmaps[-1] == 1).all() and not pafs.any()


def ref_pad_width(img, stride, pad_value, min_dims):
    """val.py's pad_width."""
    h, w, _ = img.shape
    h = min(min_dims[0], h)
    min_dims[0] = math.ceil(min_dims[0] / float(stride)) * stride
    min_dims[1] = max(min_dims[1], w)
    min_dims[1] = math.ceil(min_dims[1] / float(stride)) * stride
    pad = []
    pad.append(int(math.floor((min_dims[0] - h) / 2.0)))
    pad.append(int(math.floor((min_dims[1] - w) / 2.0)))
    pad.append(int(min_dims[0] - h - pad[0]))
    pad.append(int(min_dims[1] - w - pad[1]))
    padded_img = cv2.copyMakeBorder(img, pad[0], pad[2], pad[1], pad[3], cv2.BORDER_CONSTANT, value=pad_value)
    return padded_img, pad


@pytest.mark.parametrize('stride', [8, 16])
def test_oracle_geometry_is_val_py_padding(stride):
    """The input size and padding of val.py (cv2.resize to height 368, pad_width) for every real image size."""
    sizes = set()
    for name in ANNOTATION_FILES:
        with open(ANNOTATION_FILES[name], encoding='utf-8') as f:
            sizes |= {(i['height'], i['width']) for i in json.load(f)['images']}
    assert len(sizes) > 20
    for height, width in sorted(sizes):
        image = np.zeros((height, width, 3), np.uint8)
        ratio = 368 / float(height)
        scaled = cv2.resize(image, (0, 0), fx=ratio, fy=ratio, interpolation=cv2.INTER_CUBIC)
        padded, pad = ref_pad_width(scaled, stride, (0, 0, 0), [368, max(scaled.shape[1], 368)])
        scale, our_pad, size = oracle_geometry(height, width, 368, stride)
        assert scale == ratio and tuple(pad) == our_pad and size == padded.shape[:2]
