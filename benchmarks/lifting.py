"""Time of lift_poses for a frame of many people: 640x480 float32 depth with holes, plumb_bob distortion.

    python benchmarks/lifting.py [--people 10] [--repeats 2000]

The people are laid out side by side, 15-17 of 18 keypoints found, each 120-300 px tall. Prints one JSON
document: the median and 90th percentile time per call in milliseconds.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openpose_ros.inference.lifting import Intrinsics, lift_poses  # noqa: E402

WIDTH, HEIGHT = 640, 480


def frame(people, generator):
    depth = generator.uniform(1.5, 4.0, (HEIGHT, WIDTH)).astype(np.float32)
    depth[generator.random((HEIGHT, WIDTH)) < 0.1] = 0            # a tenth of the pixels are holes
    keypoints = np.empty((people, 18, 2))
    for person in range(people):
        height = generator.uniform(120, 300)
        left = generator.uniform(0, WIDTH - height / 2)
        top = generator.uniform(0, HEIGHT - height)
        keypoints[person] = [left, top] + generator.random((18, 2)) * [height / 2, height]
        keypoints[person, generator.choice(18, generator.integers(1, 4), replace=False)] = -1
    return keypoints, depth


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--people', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=2000)
    args = parser.parse_args()
    intrinsics = Intrinsics([[525, 0, 319.5], [0, 525, 239.5], [0, 0, 1]], WIDTH, HEIGHT, 'plumb_bob',
                            [0.09, -0.18, 0.0012, -0.0009, 0.05])
    keypoints, depth = frame(args.people, np.random.default_rng(0))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        lift_poses(keypoints, depth, intrinsics)
        times.append(time.perf_counter() - start)
    times_ms = np.array(times) * 1000
    print(json.dumps({'people': args.people, 'repeats': args.repeats,
                      'median_ms': round(float(np.median(times_ms)), 3),
                      'p90_ms': round(float(np.percentile(times_ms, 90)), 3)}))


if __name__ == '__main__':
    main()
