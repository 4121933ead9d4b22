"""The 18-keypoint OpenPose body model as data: names, limbs, PAF channels, COCO mapping, colours.

Every other module reads these tables; nothing repeats them.
"""
import numpy as np

KEYPOINT_NAMES = (
    'nose', 'neck',
    'r_sho', 'r_elb', 'r_wri', 'l_sho', 'l_elb', 'l_wri',
    'r_hip', 'r_knee', 'r_ank', 'l_hip', 'l_knee', 'l_ank',
    'r_eye', 'l_eye', 'r_ear', 'l_ear',
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
NECK, R_SHOULDER, L_SHOULDER = 1, 2, 5

# Limb k joins LIMBS[k] = (a, b) and owns PAF channels 2k (x) and 2k + 1 (y), in the order of the
# original training targets, so that published checkpoints decode unchanged.
LIMBS = (
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4), (2, 16),
    (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16), (15, 17),
)
NUM_LIMBS = len(LIMBS)
NUM_HEATMAPS = NUM_KEYPOINTS + 1  # + background
NUM_PAFS = 2 * NUM_LIMBS

# The shoulder-ear limbs close loops in the skeleton: they help grouping but are not drawn.
LOOP_LIMBS = (LIMBS.index((2, 16)), LIMBS.index((5, 17)))
SKELETON = tuple(limb for limb in range(NUM_LIMBS) if limb not in LOOP_LIMBS)

# Grouping walks the skeleton as a tree from the neck outwards, so that each limb's first keypoint is
# already placed in a pose when the limb is reached; the loop limbs come last.
GROUPING_ORDER = tuple(LIMBS.index(limb) for limb in (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))) + LOOP_LIMBS

# COCO's 17 keypoints in COCO order, as indices into the 18 OpenPose keypoints (the neck has no COCO twin).
COCO_TO_OPENPOSE = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)

# Left/right partner of each keypoint, for horizontal flips.
FLIP_PAIRS = tuple(
    KEYPOINT_NAMES.index(('l_' + name[2:]) if name.startswith('r_') else ('r_' + name[2:]))
    if name[:2] in ('r_', 'l_') else index
    for index, name in enumerate(KEYPOINT_NAMES)
)

# COCO keypoint sigmas in OpenPose order (the neck takes the shoulders'), for OKS.
SIGMAS = np.array((.26, .79, .79, .72, .62, .79, .72, .62, 1.07, .87, .89, 1.07, .87, .89, .25, .25, .35, .35),
                  dtype=np.float32) / 10.0

# BGR colour of each keypoint and limb when drawing.
KEYPOINT_COLORS = (
    (0, 0, 255), (0, 85, 255), (0, 170, 255), (0, 255, 255), (0, 255, 170), (0, 255, 85),
    (0, 255, 0), (85, 255, 0), (170, 255, 0), (255, 255, 0), (255, 170, 0), (255, 85, 0),
    (255, 0, 0), (255, 0, 85), (255, 0, 170), (255, 0, 255), (170, 0, 255), (85, 0, 255),
)
LIMB_COLORS = tuple(KEYPOINT_COLORS[b] for _, b in LIMBS)

# REP-155 (ROS4HRI) hri_msgs/Skeleton2D: its keypoint constants by name, each with the OpenPose keypoint it
# holds. Skeleton2D numbers the eyes and ears left first (14 LEFT_EYE, 15 RIGHT_EYE, 16 LEFT_EAR, 17 RIGHT_EAR),
# unlike OpenPose: map by these names, never by index.
SKELETON2D_KEYPOINTS = {
    'NOSE': 'nose', 'NECK': 'neck',
    'RIGHT_SHOULDER': 'r_sho', 'RIGHT_ELBOW': 'r_elb', 'RIGHT_WRIST': 'r_wri',
    'LEFT_SHOULDER': 'l_sho', 'LEFT_ELBOW': 'l_elb', 'LEFT_WRIST': 'l_wri',
    'RIGHT_HIP': 'r_hip', 'RIGHT_KNEE': 'r_knee', 'RIGHT_ANKLE': 'r_ank',
    'LEFT_HIP': 'l_hip', 'LEFT_KNEE': 'l_knee', 'LEFT_ANKLE': 'l_ank',
    'LEFT_EYE': 'l_eye', 'RIGHT_EYE': 'r_eye', 'LEFT_EAR': 'l_ear', 'RIGHT_EAR': 'r_ear',
}
