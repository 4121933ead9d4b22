"""COCO keypoint data for training and evaluation: where it is (`ExternalDataset`, `CocoKeypoints`) and the
training samples (`CocoTrainDataset`: augmented image, heatmaps, PAFs and loss mask).

The augmentation is the reference's (its datasets/transformations.py: Scale, Rotate, CropPad, Flip) in one
affine warp: the image and the loss mask are resampled once, the keypoints moved by the same matrix, and
the targets rendered afterwards by openpose_ros.training.targets in the crop's own geometry. Every random draw of a
sample comes from a generator seeded by (seed, epoch, index), so a sample does not depend on the order in
which samples are drawn, on the number of workers, or on where a resumed run starts.
"""
import math
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from openpose_ros.formats.coco import load_coco_keypoints
from openpose_ros.keypoints import FLIP_PAIRS, NUM_KEYPOINTS
from openpose_ros.training.targets import PAF_THICKNESS, SIGMA, generate_targets, segmentation_mask

SAMPLE_MODES = ('person', 'image')


class ExternalDataset:
    """A dataset on disk, as OpenDR gives one: its folder and its type (only "COCO" is understood).

    A COCO folder holds an images folder (e.g. ``train2017/``) and the person keypoint annotations, either
    beside it (OpenDR's layout) or in ``annotations/`` (COCO's layout).
    """

    def __init__(self, path, dataset_type='COCO'):
        self.path = os.fspath(path)
        self.dataset_type = dataset_type

    def __repr__(self):
        return f'ExternalDataset(path={self.path!r}, dataset_type={self.dataset_type!r})'


@dataclass
class CocoKeypoints:
    """Where a COCO keypoint dataset is: its images folder and its annotations (a file path or a loaded dict)."""
    images_dir: str
    annotations: object


def resolve_coco(dataset, images_folder_name, annotations_filename):
    """ExternalDataset (type COCO) or CocoKeypoints -> CocoKeypoints, with clear errors for what is missing."""
    if isinstance(dataset, CocoKeypoints):
        return dataset
    if not isinstance(dataset, ExternalDataset):
        raise TypeError(f'expected an ExternalDataset or CocoKeypoints, got {type(dataset).__name__}')
    if str(dataset.dataset_type).lower() != 'coco':
        raise ValueError(f'dataset_type must be "COCO", not {dataset.dataset_type!r}')
    images_dir = os.path.join(dataset.path, images_folder_name)
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f'no images folder {images_folder_name!r} in {dataset.path}')
    candidates = [os.path.join(dataset.path, annotations_filename),
                  os.path.join(dataset.path, 'annotations', annotations_filename)]
    annotations = next((path for path in candidates if os.path.isfile(path)), None)
    if annotations is None:
        raise FileNotFoundError(f'no annotation file {annotations_filename!r} in {dataset.path} '
                                f'or {os.path.join(dataset.path, "annotations")}')
    return CocoKeypoints(images_dir, annotations)


@dataclass
class Augmentation:
    """The training sample's geometry and its random variation; the defaults are the reference's.

    - ``crop_size``: (height, width) of the network input, multiples of the stride;
    - ``sample``: 'person' (the reference: one sample per well-annotated person, centred on them and scaled
      so that they are ``target_height`` of the crop height tall) or 'image' (one sample per image, scaled so
      that the image height fills the crop height, as inference sees it);
    - ``scale_range``: random factor on that scale; ``max_rotation``: degrees, uniform in +-;
    - ``center_perturbation``: pixels of random shift of the crop centre, uniform in +-;
    - ``flip_prob``: probability of a horizontal flip (left and right keypoints swap).
    """
    crop_size: tuple = (368, 368)
    sample: str = 'person'
    target_height: float = 0.6
    scale_range: tuple = (0.5, 1.1)
    max_rotation: float = 40.0
    center_perturbation: float = 40.0
    flip_prob: float = 0.5

    def __post_init__(self):
        self.crop_size = tuple(int(v) for v in self.crop_size)
        self.scale_range = tuple(float(v) for v in self.scale_range)
        if self.sample not in SAMPLE_MODES:
            raise ValueError(f'sample must be one of {SAMPLE_MODES}, not {self.sample!r}')
        if len(self.crop_size) != 2 or min(self.crop_size) <= 0:
            raise ValueError(f'crop_size must be (height, width) > 0, got {self.crop_size}')
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f'scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}')
        if not 0.0 <= self.flip_prob <= 1.0 or self.max_rotation < 0 or self.center_perturbation < 0 \
                or not self.target_height > 0:
            raise ValueError('flip_prob must be in [0, 1]; max_rotation, center_perturbation >= 0; '
                             'target_height > 0')

    @classmethod
    def none(cls, crop_size=(368, 368), sample='image'):
        """No random variation: the scale, centre and orientation of the sample mode only."""
        return cls(crop_size=crop_size, sample=sample, scale_range=(1.0, 1.0), max_rotation=0.0,
                   center_perturbation=0.0, flip_prob=0.0)


def sample_people(record, min_keypoints=5, min_area=32 * 32, min_distance=0.3):
    """Indices of the people of a record that the reference trains on, each the centre of a sample.

    As its prepare_train_labels.py: at least ``min_keypoints`` labelled COCO keypoints, an area of at least
    ``min_area``, and a box centre not within ``min_distance`` x the width of an already chosen person's box.
    """
    chosen, centres = [], []
    labelled = (record.keypoints[:, :, 2] > 0).sum(axis=1) - (record.keypoints[:, 1, 2] > 0)  # without the neck
    for person, (x, y, w, h) in enumerate(record.bboxes):
        if labelled[person] < min_keypoints or record.areas[person] < min_area:
            continue
        centre = (x + w / 2, y + h / 2)
        if any(math.hypot(centre[0] - cx, centre[1] - cy) < cw * min_distance for cx, cy, cw in centres):
            continue
        chosen.append(person)
        centres.append((centre[0], centre[1], w))
    return chosen


def sample_matrix(rng, augmentation, image_size, centre, person_height=None):
    """The 2x3 affine matrix from image pixels to crop pixels, and whether it flips.

    The draws, in this order: scale factor, rotation, centre shift x, centre shift y, flip.
    """
    crop_h, crop_w = augmentation.crop_size
    if augmentation.sample == 'person':
        scale = augmentation.target_height * crop_h / max(float(person_height), 1.0)
    else:
        scale = crop_h / float(image_size[0])
    scale *= rng.uniform(*augmentation.scale_range)
    angle = math.radians(rng.uniform(-1.0, 1.0) * augmentation.max_rotation)
    shift = rng.uniform(-1.0, 1.0, 2) * augmentation.center_perturbation
    flip = rng.uniform() < augmentation.flip_prob
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    linear = np.array([[cos, sin], [-sin, cos]])
    # The centre lands on the middle of the crop (pixel centres at integers), plus the shift.
    target = np.array([(crop_w - 1) / 2.0, (crop_h - 1) / 2.0]) + shift
    matrix = np.hstack([linear, (target - linear @ np.asarray(centre, np.float64))[:, None]])
    if flip:
        matrix = np.array([[-1.0, 0.0, crop_w - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0.0, 0.0, 1.0]])
    return matrix, flip


def transform_keypoints(keypoints, matrix, flip):
    """(N, 18, 3) keypoints through the affine matrix; a flip swaps left and right. States are kept."""
    moved = np.array(keypoints, dtype=np.float64, copy=True).reshape(-1, NUM_KEYPOINTS, 3)
    moved[..., :2] = moved[..., :2] @ matrix[:, :2].T + matrix[:, 2]
    if flip:
        moved = moved[:, list(FLIP_PAIRS)]
    return moved


@dataclass
class CocoTrainDataset:
    """Training samples of a COCO keypoint dataset: ``dataset[i]`` is a tuple of float32 arrays
    (image (3, H, W) normalised, heatmaps (19, H/s, W/s), pafs (38, H/s, W/s), mask (1, H/s, W/s)).

    Every labelled person of the image is rendered, not only the one a sample is centred on; crowds (and,
    with ``mask_unlabelled``, people annotated without keypoints) are masked out of the loss. Images are read
    from ``images_dir`` in place. ``set_epoch(epoch)`` changes the random draws, as a sampler's does.
    """
    images_dir: str
    annotations: object
    augmentation: Augmentation = field(default_factory=Augmentation)
    stride: int = 8
    sigma: float = SIGMA
    paf_thickness: float = PAF_THICKNESS
    img_mean: tuple = (128, 128, 128)
    img_scale: float = 1 / 256
    mask_unlabelled: bool = True
    image_ids: object = None
    seed: int = 0
    epoch: int = 0

    def __post_init__(self):
        self.images_dir = os.fspath(self.images_dir)
        if any(size % self.stride for size in self.augmentation.crop_size):
            raise ValueError(f'crop_size {self.augmentation.crop_size} must be a multiple of the stride {self.stride}')
        records = load_coco_keypoints(self.annotations, self.image_ids)
        self.records = [record for record in records if record.num_people]
        if self.augmentation.sample == 'person':
            self.samples = [(r, p) for r, record in enumerate(self.records) for p in sample_people(record)]
        else:
            self.samples = [(r, None) for r in range(len(self.records))]
        if not self.samples:
            raise ValueError(f'no training samples: no annotated people in {self.annotations!r}')

    @classmethod
    def from_dataset(cls, dataset, images_folder_name='train2017',
                     annotations_filename='person_keypoints_train2017.json', **options):
        """From an ExternalDataset (type COCO) or CocoKeypoints; ``options`` are the dataclass fields."""
        coco = resolve_coco(dataset, images_folder_name, annotations_filename)
        return cls(coco.images_dir, coco.annotations, **options)

    def __len__(self):
        return len(self.samples)

    def set_epoch(self, epoch):
        """Sets the epoch, which changes every sample's random draws."""
        self.epoch = int(epoch)

    def rng(self, index):
        """The random generator of sample `index` in this epoch, seeded by (seed, epoch, index): reproducible in any
        worker and order."""
        return np.random.default_rng([int(self.seed), int(self.epoch), int(index)])

    def read_image(self, record):
        """The BGR image of an ImageRecord; FileNotFoundError when it cannot be read."""
        path = record.path(self.images_dir)
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f'cannot read image {path}')
        return image

    def sample(self, index):
        """The augmented sample as numpy arrays: (image uint8 BGR crop, keypoints (N, 18, 3) in crop pixels,
        input-resolution loss mask, matrix, flip)."""
        record_index, person = self.samples[index]
        record = self.records[record_index]
        image = self.read_image(record)
        if person is None:
            centre = ((record.width - 1) / 2.0, (record.height - 1) / 2.0)
            person_height = None
        else:
            x, y, w, h = record.bboxes[person]
            centre, person_height = (x + w / 2.0, y + h / 2.0), h
        matrix, flip = sample_matrix(self.rng(index), self.augmentation, image.shape[:2], centre, person_height)
        crop_h, crop_w = self.augmentation.crop_size
        crop = cv2.warpAffine(image, matrix, (crop_w, crop_h), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in self.img_mean))
        segmentations = record.mask_segmentations(include_unlabelled=self.mask_unlabelled)
        if segmentations:
            mask = segmentation_mask(segmentations, record.height, record.width)
            mask = cv2.warpAffine(mask, matrix, (crop_w, crop_h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
        else:
            mask = np.ones((crop_h, crop_w), np.float32)
        keypoints = transform_keypoints(record.keypoints, matrix, flip)
        return crop, keypoints, mask, matrix, flip

    def __getitem__(self, index):
        crop, keypoints, mask, _, _ = self.sample(index)
        height, width = crop.shape[:2]
        targets = generate_targets(keypoints, height, width, self.stride, self.sigma, self.paf_thickness, mask=mask)
        image = (crop.astype(np.float32) - np.asarray(self.img_mean, np.float32)) * np.float32(self.img_scale)
        return (np.ascontiguousarray(image.transpose(2, 0, 1)), targets.heatmaps, targets.pafs,
                targets.mask[None])
