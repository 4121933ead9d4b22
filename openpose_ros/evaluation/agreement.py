"""How far two backends of one model agree on real images (e.g. int8 or OpenVINO against fp32): the error of
their heatmaps and PAFs, and their poses matched one-to-one by COCO's keypoint similarity."""
import numpy as np

from openpose_ros.inference.decode import DecoderConfig
from openpose_ros.inference.estimator import PoseEstimator
from openpose_ros.runtime.quantize import Preprocessing, load_images
from openpose_ros.tracking.oks import coco_similarity, greedy_pairs

SUBSTANTIAL_KEYPOINTS = 5  # poses with fewer are fragments that come and go near the decoder's thresholds


def match_poses(reference, candidate, min_similarity=0.5):
    """Greedy one-to-one matching of two pose lists by COCO's keypoint similarity; returns [(i, j, similarity)].

    A pair scores the lower of its two similarities (over the reference's keypoints, and over the candidate's):
    measured one way only, a fragment of two keypoints lying on a person would score 1.0 against that person
    and take the person's match from its true twin.
    """
    if not (reference and candidate):
        return []
    reference_keypoints = np.stack([pose.data for pose in reference])
    candidate_keypoints = np.stack([pose.data for pose in candidate])
    scores = np.minimum(coco_similarity(reference_keypoints, candidate_keypoints),
                        coco_similarity(candidate_keypoints, reference_keypoints).T)
    rows, columns = greedy_pairs(scores, min_similarity)
    return [(int(i), int(j), float(scores[i, j])) for i, j in zip(rows, columns)]


def compare_backends(reference, candidate, images, preprocessing=Preprocessing(), upsample_ratio=4,
                     decoder=DecoderConfig(), substantial_keypoints=SUBSTANTIAL_KEYPOINTS):
    """Agreement of `candidate` (e.g. int8) with `reference` (fp32) on real images (BGR arrays or paths).

    Returns a dict: heatmap and PAF errors (max and mean absolute, and the maps' own max for scale); keypoint
    displacement in image pixels over keypoints both found in matched poses (mean, median, 95th percentile,
    max); pose agreement: poses of each, matched pairs (keypoint similarity >= 0.5), recall (reference poses
    matched), precision (candidate poses matched) and agreement (the lower of the two), and the same for
    the *substantial* poses of at least `substantial_keypoints` keypoints, since fragments of 2-4 keypoints
    near the decoder's thresholds come and go with any change of the maps; keypoints found by only one of a
    matched pair. Agreement figures are None where there is nothing to agree on (no poses at all).
    """
    images = load_images(images)
    make = lambda backend: PoseEstimator(backend, preprocessing.stride, preprocessing.base_height,  # noqa: E731
                                         preprocessing.img_mean, preprocessing.img_scale, preprocessing.pad_value,
                                         decoder=decoder)
    estimators = make(reference), make(candidate)
    errors = {'heatmaps': [], 'pafs': []}
    extent = {'heatmaps': 0.0, 'pafs': 0.0}
    displacements, keypoint_disagreements = {'all': [], 'substantial': []}, 0
    # reference poses, candidate poses, reference poses matched, candidate poses matched
    counts = {key: [0, 0, 0, 0] for key in ('all', 'substantial')}
    for image in images:
        outputs = []
        for estimator in estimators:
            heatmaps, pafs, box = estimator.maps(image)
            outputs.append((heatmaps, pafs, estimator.decode(heatmaps, pafs, box, upsample_ratio)))
        (heat_a, paf_a, poses_a), (heat_b, paf_b, poses_b) = outputs
        errors['heatmaps'].append(np.abs(heat_a - heat_b).ravel())
        errors['pafs'].append(np.abs(paf_a - paf_b).ravel())
        extent['heatmaps'] = max(extent['heatmaps'], float(np.abs(heat_a).max()))
        extent['pafs'] = max(extent['pafs'], float(np.abs(paf_a).max()))
        big_a = [bool(p.found.sum() >= substantial_keypoints) for p in poses_a]
        big_b = [bool(p.found.sum() >= substantial_keypoints) for p in poses_b]
        counts['all'][0] += len(poses_a)
        counts['all'][1] += len(poses_b)
        counts['substantial'][0] += sum(big_a)
        counts['substantial'][1] += sum(big_b)
        for i, j, _ in match_poses(poses_a, poses_b):
            both = poses_a[i].found & poses_b[j].found
            keypoint_disagreements += int((poses_a[i].found != poses_b[j].found).sum())
            moved = np.linalg.norm(poses_a[i].data[both] - poses_b[j].data[both], axis=1)
            counts['all'][2] += 1
            counts['all'][3] += 1
            displacements['all'].append(moved)
            counts['substantial'][2] += int(big_a[i])
            counts['substantial'][3] += int(big_b[j])
            if big_a[i]:
                displacements['substantial'].append(moved)
    result = {'images': len(images)}
    for name, parts in errors.items():
        values = np.concatenate(parts)
        result[f'{name}_max_abs_error'] = float(values.max())
        result[f'{name}_mean_abs_error'] = float(values.mean())
        result[f'{name}_max_abs_value'] = extent[name]
    for group, prefix in (('all', ''), ('substantial', 'substantial_')):
        moved = np.concatenate(displacements[group]) if displacements[group] else np.zeros(0)
        result[f'{prefix}keypoints_compared'] = int(moved.size)
        for name, function in (('mean', np.mean), ('median', np.median),
                               ('p95', lambda v: np.percentile(v, 95)), ('max', np.max)):
            result[f'{prefix}keypoint_displacement_{name}_px'] = float(function(moved)) if moved.size else None
        n_reference, n_candidate, matched_reference, matched_candidate = counts[group]
        result.update({
            f'{prefix}poses_reference': n_reference, f'{prefix}poses_candidate': n_candidate,
            f'{prefix}poses_matched': matched_reference,
            f'{prefix}pose_recall': matched_reference / n_reference if n_reference else None,
            f'{prefix}pose_precision': matched_candidate / n_candidate if n_candidate else None,
            # the worse of the two: 1.0 only when every pose of each has its twin in the other
            f'{prefix}pose_agreement': min(matched_reference / n_reference if n_reference else 1.0,
                                           matched_candidate / n_candidate if n_candidate else 1.0)
            if n_reference or n_candidate else None,
        })
    result['substantial_keypoints'] = substantial_keypoints
    result['keypoints_found_by_one_only'] = keypoint_disagreements
    return result
