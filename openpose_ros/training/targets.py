"""Training targets of Lightweight OpenPose, vectorised: keypoint heatmaps, part affinity fields, loss masks.

The definitions are the reference's (its datasets/coco.py), value for value:
- heatmap of keypoint type j: for every labelled keypoint of that type a Gaussian of ``sigma`` input pixels,
  sampled at map pixel centres ``m * stride + stride / 2 - 0.5``, cut where its exponent exceeds ln(100)
  (and outside the reference's +-4 sigma window), summed over people and clipped at 1; channel 18 is the
  background, 1 - the maximum over the keypoint channels;
- PAF of limb k = LIMBS[k] (channels 2k = x, 2k + 1 = y): the unit vector from a to b, written at map pixels
  (``m`` at input ``m * stride``) within ``thickness`` map pixels of the line through a and b, inside the
  limb's box grown by ``thickness``. Where people overlap the later one overwrites (no averaging);
- loss mask: 1, 0 over the given segmentations (crowds; the reference masks only these, ``generate_targets``
  also masks people annotated without keypoints unless told not to), averaged over each map pixel's
  stride x stride block.
Keypoints are (N, 18, 3) rows of x, y, state in input pixels; state > 0 means labelled (see openpose_ros.formats.coco).
"""
from dataclasses import dataclass

import numpy as np

from openpose_ros.inference.preprocess import letterbox
from openpose_ros.keypoints import LIMBS, NUM_HEATMAPS, NUM_KEYPOINTS, NUM_PAFS

SIGMA = 7.0
PAF_THICKNESS = 1.0
STRIDE = 8
BASE_HEIGHT = 368
_N_SIGMA = 4
_MAX_EXPONENT = 4.6052  # ln(100): Gaussian values below ~0.01 are not written


def _as_keypoints(keypoints):
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.size == 0:
        return keypoints.reshape(0, NUM_KEYPOINTS, 3)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f'keypoints must be (N, {NUM_KEYPOINTS}, 3), got {keypoints.shape}')
    return keypoints


def map_size(height, width, stride=STRIDE):
    """(rows, cols) of the maps of an input of the given size."""
    return height // stride, width // stride


def keypoint_heatmaps(keypoints, height, width, stride=STRIDE, sigma=SIGMA):
    """(19, height // stride, width // stride) float32: 18 keypoint heatmaps and the background."""
    keypoints = _as_keypoints(keypoints)
    rows, cols = map_size(height, width, stride)
    maps = np.zeros((NUM_HEATMAPS, rows, cols), np.float32)
    shift = stride / 2 - 0.5
    centres_x = np.arange(cols) * stride + shift
    centres_y = np.arange(rows) * stride + shift
    grid_x, grid_y = np.arange(cols), np.arange(rows)
    for kind in range(NUM_KEYPOINTS):
        points = keypoints[keypoints[:, kind, 2] > 0, kind, :2]
        if len(points) == 0:
            continue
        x, y = points[:, 0:1], points[:, 1:2]
        # The reference's window: [trunc(p - 4 sigma) clipped at 0, trunc(p + 4 sigma) clipped at the map) // stride.
        x_lo = np.maximum(np.trunc(x - _N_SIGMA * sigma), 0) // stride
        y_lo = np.maximum(np.trunc(y - _N_SIGMA * sigma), 0) // stride
        x_hi = np.minimum(np.trunc(x + _N_SIGMA * sigma), cols * stride) // stride
        y_hi = np.minimum(np.trunc(y + _N_SIGMA * sigma), rows * stride) // stride
        in_x = (grid_x >= x_lo) & (grid_x < x_hi)                       # (P, cols)
        in_y = (grid_y >= y_lo) & (grid_y < y_hi)                       # (P, rows)
        dx = centres_x - x
        dy = centres_y - y
        d2 = dy[:, :, None] * dy[:, :, None] + dx[:, None, :] * dx[:, None, :]   # (P, rows, cols)
        exponent = d2 / 2 / sigma / sigma
        keep = (exponent <= _MAX_EXPONENT) & in_y[:, :, None] & in_x[:, None, :]
        values = np.where(keep, np.exp(-exponent), 0.0).sum(axis=0)
        maps[kind] = np.minimum(values, 1.0)
    maps[-1] = 1 - maps.max(axis=0)
    return maps


def part_affinity_fields(keypoints, height, width, stride=STRIDE, thickness=PAF_THICKNESS):
    """(38, height // stride, width // stride) float32: x and y of each limb's unit vector (LIMBS order)."""
    keypoints = _as_keypoints(keypoints)
    rows, cols = map_size(height, width, stride)
    pafs = np.zeros((NUM_PAFS, rows, cols), np.float32)
    grid_x = np.arange(cols, dtype=np.float64)
    grid_y = np.arange(rows, dtype=np.float64)
    for k, (a, b) in enumerate(LIMBS):
        both = (keypoints[:, a, 2] > 0) & (keypoints[:, b, 2] > 0)
        if not both.any():
            continue
        xa, ya = keypoints[both, a, 0] / stride, keypoints[both, a, 1] / stride
        xb, yb = keypoints[both, b, 0] / stride, keypoints[both, b, 1] / stride
        x_ba, y_ba = xb - xa, yb - ya
        norm = (x_ba * x_ba + y_ba * y_ba) ** 0.5
        drawn = norm >= 1e-7  # the reference draws nothing for a limb of zero length
        if not drawn.any():
            continue
        xa, ya, norm = xa[drawn], ya[drawn], norm[drawn]
        ux, uy = x_ba[drawn] / norm, y_ba[drawn] / norm
        x_min = np.trunc(np.maximum(np.minimum(xa, xb[drawn]) - thickness, 0))[:, None]
        x_max = np.trunc(np.minimum(np.maximum(xa, xb[drawn]) + thickness, cols))[:, None]
        y_min = np.trunc(np.maximum(np.minimum(ya, yb[drawn]) - thickness, 0))[:, None]
        y_max = np.trunc(np.minimum(np.maximum(ya, yb[drawn]) + thickness, rows))[:, None]
        in_x = (grid_x >= x_min) & (grid_x < x_max)                     # (P, cols)
        in_y = (grid_y >= y_min) & (grid_y < y_max)                     # (P, rows)
        x_ca = grid_x - xa[:, None]                                     # (P, cols)
        y_ca = grid_y - ya[:, None]                                     # (P, rows)
        d = np.abs(x_ca[:, None, :] * uy[:, None, None] - y_ca[:, :, None] * ux[:, None, None])
        on = (d <= thickness) & in_y[:, :, None] & in_x[:, None, :]     # (P, rows, cols)
        covered = on.any(axis=0)
        last = len(on) - 1 - np.argmax(on[::-1], axis=0)                 # the last person writing a pixel wins
        pafs[2 * k] = np.where(covered, ux[last], 0.0)
        pafs[2 * k + 1] = np.where(covered, uy[last], 0.0)
    return pafs


def segmentation_mask(segmentations, height, width):
    """(height, width) float32: 1, and 0 inside any of the COCO segmentations (polygons, RLE or compressed RLE)."""
    mask = np.ones((height, width), np.float32)
    if not segmentations:
        return mask
    from pycocotools import mask as mask_utils
    for segmentation in segmentations:
        if isinstance(segmentation, list):
            if not segmentation:
                continue
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation.get('counts'), list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        mask[mask_utils.decode(rle) > 0.5] = 0
    return mask


def downsample_mask(mask, stride=STRIDE):
    """Mean of each stride x stride block: (H, W) -> (H // stride, W // stride) float32 (cv2's INTER_AREA at
    1/stride)."""
    mask = np.asarray(mask, dtype=np.float32)
    rows, cols = map_size(*mask.shape, stride)
    blocks = mask[:rows * stride, :cols * stride].reshape(rows, stride, cols, stride)
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


@dataclass
class Targets:
    """The training targets of one input, at 1/stride of its size: heatmaps, PAFs and the loss mask."""
    heatmaps: np.ndarray  # (19, H, W) float32
    pafs: np.ndarray      # (38, H, W) float32
    mask: np.ndarray      # (H, W) float32, the loss weight of every heatmap and PAF channel


def generate_targets(keypoints, height, width, stride=STRIDE, sigma=SIGMA, paf_thickness=PAF_THICKNESS,
                     mask=None):
    """Heatmaps, PAFs and loss mask of an input of height x width with these people.

    ``mask`` is the input-resolution mask (for instance ``segmentation_mask`` warped by the same augmentation
    as the image), or a list of segmentations in input pixels, or None for no masking.
    """
    if mask is None:
        map_mask = np.ones(map_size(height, width, stride), np.float32)
    else:
        if isinstance(mask, (list, tuple)):
            mask = segmentation_mask(mask, height, width)
        mask = np.asarray(mask, np.float32)
        if mask.shape != (height, width):
            raise ValueError(f'mask is {mask.shape}, the input ({height}, {width})')
        map_mask = downsample_mask(mask, stride)
    return Targets(keypoint_heatmaps(keypoints, height, width, stride, sigma),
                   part_affinity_fields(keypoints, height, width, stride, paf_thickness),
                   map_mask)


def record_targets(record, stride=STRIDE, sigma=SIGMA, paf_thickness=PAF_THICKNESS, mask_unlabelled=True):
    """Targets of an ImageRecord at its own resolution; the mask covers crowds and, if ``mask_unlabelled``,
    people annotated without keypoints (the reference masks crowds only)."""
    segmentations = record.mask_segmentations(include_unlabelled=mask_unlabelled)
    return generate_targets(record.keypoints, record.height, record.width, stride, sigma, paf_thickness,
                            mask=segmentation_mask(segmentations, record.height, record.width))


def oracle_geometry(height, width, base_height=BASE_HEIGHT, stride=STRIDE):
    """The reference val.py's network input for an image: scale = base_height / height, the resized image
    padded (centred) to a multiple of the stride and at least base_height wide.

    Returns (scale, pad, (input_height, input_width)) with pad = (top, left, bottom, right); an image point
    (x, y) is at (x * scale + left, y * scale + top) in the network input.
    """
    box, (scaled_width, scaled_height) = letterbox(height, width, base_height, stride)
    pad = (box.top, box.left, box.height - scaled_height - box.top, box.width - scaled_width - box.left)
    return box.scale, pad, (box.height, box.width)


def render_oracle_maps(record, base_height=BASE_HEIGHT, stride=STRIDE, sigma=SIGMA, paf_thickness=PAF_THICKNESS):
    """Ground-truth maps of a record in val.py's geometry, as a perfect network would output them.

    Returns (heatmaps (19, H, W), pafs (38, H, W), scale, pad) with H, W the input size // stride and pad =
    (top, left, bottom, right); a network-input point p maps back to the image as (p - (left, top)) / scale.
    """
    scale, pad, (input_h, input_w) = oracle_geometry(record.height, record.width, base_height, stride)
    keypoints = np.array(record.keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    keypoints[:, :, 0] = keypoints[:, :, 0] * scale + pad[1]
    keypoints[:, :, 1] = keypoints[:, :, 1] * scale + pad[0]
    heatmaps = keypoint_heatmaps(keypoints, input_h, input_w, stride, sigma)
    pafs = part_affinity_fields(keypoints, input_h, input_w, stride, paf_thickness)
    return heatmaps, pafs, scale, pad
