"""The decoder on oracle maps of real COCO people (WEIGHTS.md): targets rendered from annotations, decoded,
scored with pycocotools against the same annotations."""
import numpy as np
import pytest

from conftest import MINI_TRAIN_ANNOTATIONS, MINI_VAL_ANNOTATIONS, MMPOSE_ANNOTATIONS
from openpose_ros.evaluation.metrics import evaluate_oracle_maps, load_ground_truth
from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.inference.decode import DecoderConfig, decode_poses, find_peaks
from openpose_ros.training.targets import render_oracle_maps

# The reference decoder's AP on the same oracle maps (WEIGHTS.md).
REFERENCE_AP = {'mmpose-tests': 0.964, 'coco-mini val2017': 0.773, 'coco-mini train2017': 0.689}


def test_oracle_maps_of_mmpose_tests_reach_ap_0_9():
    metrics = evaluate_oracle_maps(str(MMPOSE_ANNOTATIONS))
    print(f"oracle AP mmpose-tests: {metrics['AP']:.3f} (reference {REFERENCE_AP['mmpose-tests']})")
    assert metrics['AP'] >= 0.9
    assert metrics['detections'] == metrics['people'] == 12


@pytest.mark.slow
@pytest.mark.parametrize('name, annotations', [('coco-mini val2017', MINI_VAL_ANNOTATIONS),
                                               ('coco-mini train2017', MINI_TRAIN_ANNOTATIONS)])
def test_oracle_maps_of_coco_mini_beat_the_reference(name, annotations):
    metrics = evaluate_oracle_maps(str(annotations))
    print(f"oracle AP {name}: {metrics['AP']:.3f} (reference {REFERENCE_AP[name]})")
    assert metrics['AP'] > REFERENCE_AP[name]


def test_images_without_people_give_no_poses_while_people_are_found():
    records = load_coco_keypoints(load_ground_truth(str(MINI_VAL_ANNOTATIONS)))
    empty = [r for r in records if r.num_people == 0]
    crowded = max(records, key=lambda r: r.num_people)
    assert len(empty) >= 5
    for record in empty[:5]:
        heatmaps, pafs, _, _ = render_oracle_maps(record)
        assert decode_poses(heatmaps, pafs)[0].shape[0] == 0
    heatmaps, pafs, _, _ = render_oracle_maps(crowded)
    assert decode_poses(heatmaps, pafs)[0].shape[0] >= crowded.num_people - 2


def test_keypoints_land_on_the_annotated_positions():
    record = next(r for r in load_coco_keypoints(load_ground_truth(str(MMPOSE_ANNOTATIONS))) if r.num_people == 1)
    heatmaps, pafs, scale, (top, left, _, _) = render_oracle_maps(record)
    keypoints, scores, pose_scores = decode_poses(heatmaps, pafs)
    assert len(keypoints) == 1 and 0 < pose_scores[0] <= 1
    truth = record.keypoints[0]
    labelled = truth[:, 2] > 0
    found = (keypoints[0, :, 0] >= 0)
    assert np.array_equal(found, labelled)
    in_image = (keypoints[0][found] - (left, top)) / scale
    error = np.linalg.norm(in_image - truth[labelled, :2], axis=1)
    assert np.median(error) < 2.0 / scale and error.max() < 4.0 / scale  # network-input pixels


def test_strongest_peak_wins_within_the_suppression_radius():
    heatmaps = np.zeros((19, 20, 20), np.float32)
    heatmaps[0, 10, 10], heatmaps[0, 10, 11] = 0.5, 0.9  # adjacent: only the stronger survives
    heatmaps[0, 3, 3] = 0.3
    peaks = find_peaks(heatmaps, 1, DecoderConfig())
    assert sorted(map(tuple, peaks.xy.tolist())) == [(3.0, 3.0), (11.0, 10.0)]


def test_bad_decoder_settings_are_refused():
    with pytest.raises(ValueError, match='peak_threshold'):
        DecoderConfig(peak_threshold=1.5)
    with pytest.raises(ValueError):
        DecoderConfig(min_keypoints=0)


def test_candidate_pairs_are_every_pair_of_each_limbs_keypoint_types():
    from openpose_ros.inference.decode import candidate_pairs
    from openpose_ros.keypoints import LIMBS, NUM_KEYPOINTS
    kinds = np.random.default_rng(0).integers(0, NUM_KEYPOINTS, 60)
    kinds[kinds == 4] = 3  # a keypoint type without peaks: its limbs have no pairs
    expected = [(limb, a, b) for limb, (kind_a, kind_b) in enumerate(LIMBS)
                for a in np.flatnonzero(kinds == kind_a) for b in np.flatnonzero(kinds == kind_b)]
    assert list(zip(*(values.tolist() for values in candidate_pairs(kinds)))) == expected
