"""How far two backends of one model agree on real images (e.g. int8 or OpenVINO against fp32): the error of
their heatmaps and PAFs, and their poses matched one-to-one by COCO's keypoint similarity."""
from dataclasses import dataclass, field

import numpy as np

from openpose_ros.inference.decode import DecoderConfig
from openpose_ros.inference.estimator import PoseEstimator
from openpose_ros.pose import Pose
from openpose_ros.runtime.backends import Backend
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
    estimators = [_estimator(backend, preprocessing, decoder) for backend in (reference, candidate)]
    tally = _Tally()
    for image in images:
        (heat_a, paf_a, poses_a), (heat_b, paf_b, poses_b) = (_maps_and_poses(estimator, image, upsample_ratio)
                                                              for estimator in estimators)
        tally.add_maps('heatmaps', heat_a, heat_b)
        tally.add_maps('pafs', paf_a, paf_b)
        tally.add_poses(poses_a, poses_b, substantial_keypoints)
    result = {'images': len(images), **tally.map_figures()}
    for group, prefix in (('all', ''), ('substantial', 'substantial_')):
        result.update(_displacement_figures(tally.displacements[group], prefix))
        result.update(_pose_figures(*tally.counts[group], prefix))
    result['substantial_keypoints'] = substantial_keypoints
    result['keypoints_found_by_one_only'] = tally.keypoint_disagreements
    return result


def _estimator(backend: Backend, preprocessing: Preprocessing, decoder: DecoderConfig) -> PoseEstimator:
    return PoseEstimator(backend, preprocessing.stride, preprocessing.base_height, preprocessing.img_mean,
                         preprocessing.img_scale, preprocessing.pad_value, decoder=decoder)


def _maps_and_poses(estimator: PoseEstimator, image: np.ndarray,
                    upsample_ratio: int) -> tuple[np.ndarray, np.ndarray, list[Pose]]:
    heatmaps, pafs, box = estimator.maps(image)
    return heatmaps, pafs, estimator.decode(heatmaps, pafs, box, upsample_ratio)


@dataclass
class _Tally:
    """What compare_backends adds up over the images: the maps' absolute errors and the reference maps' largest
    value, the displacements of the keypoints of matched poses, and per group ('all', 'substantial') the counts
    [reference poses, candidate poses, reference poses matched, candidate poses matched]."""
    errors: dict[str, list[np.ndarray]] = field(default_factory=lambda: {'heatmaps': [], 'pafs': []})
    extent: dict[str, float] = field(default_factory=lambda: {'heatmaps': 0.0, 'pafs': 0.0})
    displacements: dict[str, list[np.ndarray]] = field(default_factory=lambda: {'all': [], 'substantial': []})
    counts: dict[str, list[int]] = field(default_factory=lambda: {'all': [0, 0, 0, 0], 'substantial': [0, 0, 0, 0]})
    keypoint_disagreements: int = 0

    def add_maps(self, name: str, reference: np.ndarray, candidate: np.ndarray) -> None:
        """Adds the maps `name` ('heatmaps' or 'pafs') of one image."""
        self.errors[name].append(np.abs(reference - candidate).ravel())
        self.extent[name] = max(self.extent[name], float(np.abs(reference).max()))

    def add_poses(self, poses_a: list[Pose], poses_b: list[Pose], substantial_keypoints: int) -> None:
        """Adds the poses of one image, matched one-to-one (a: the reference's, b: the candidate's)."""
        big_a = [bool(p.found.sum() >= substantial_keypoints) for p in poses_a]
        big_b = [bool(p.found.sum() >= substantial_keypoints) for p in poses_b]
        self.counts['all'][0] += len(poses_a)
        self.counts['all'][1] += len(poses_b)
        self.counts['substantial'][0] += sum(big_a)
        self.counts['substantial'][1] += sum(big_b)
        for i, j, _ in match_poses(poses_a, poses_b):
            both = poses_a[i].found & poses_b[j].found
            self.keypoint_disagreements += int((poses_a[i].found != poses_b[j].found).sum())
            moved = np.linalg.norm(poses_a[i].data[both] - poses_b[j].data[both], axis=1)
            self.counts['all'][2] += 1
            self.counts['all'][3] += 1
            self.displacements['all'].append(moved)
            self.counts['substantial'][2] += int(big_a[i])
            self.counts['substantial'][3] += int(big_b[j])
            if big_a[i]:
                self.displacements['substantial'].append(moved)

    def map_figures(self) -> dict[str, float]:
        """The maps' errors over all images, and their scale."""
        result = {}
        for name, parts in self.errors.items():
            values = np.concatenate(parts)
            result[f'{name}_max_abs_error'] = float(values.max())
            result[f'{name}_mean_abs_error'] = float(values.mean())
            result[f'{name}_max_abs_value'] = self.extent[name]
        return result


def _displacement_figures(displacements: list[np.ndarray], prefix: str) -> dict[str, int | float | None]:
    moved = np.concatenate(displacements) if displacements else np.zeros(0)
    result: dict[str, int | float | None] = {f'{prefix}keypoints_compared': int(moved.size)}
    for name, function in (('mean', np.mean), ('median', np.median),
                           ('p95', lambda v: np.percentile(v, 95)), ('max', np.max)):
        result[f'{prefix}keypoint_displacement_{name}_px'] = float(function(moved)) if moved.size else None
    return result


def _pose_figures(n_reference: int, n_candidate: int, matched_reference: int, matched_candidate: int,
                  prefix: str) -> dict[str, int | float | None]:
    return {
        f'{prefix}poses_reference': n_reference, f'{prefix}poses_candidate': n_candidate,
        f'{prefix}poses_matched': matched_reference,
        f'{prefix}pose_recall': matched_reference / n_reference if n_reference else None,
        f'{prefix}pose_precision': matched_candidate / n_candidate if n_candidate else None,
        # the worse of the two: 1.0 only when every pose of each has its twin in the other
        f'{prefix}pose_agreement': min(matched_reference / n_reference if n_reference else 1.0,
                                       matched_candidate / n_candidate if n_candidate else 1.0)
        if n_reference or n_candidate else None,
    }
