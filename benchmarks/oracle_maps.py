"""Oracle-map benchmark of the decoder: ground-truth maps of real COCO annotations -> decode -> pycocotools.

Each row renders the training targets of every annotated person in the reference val.py's geometry (height
scaled to 368, padded to the stride), decodes them with openpose_ros.inference.decode.decode_poses, converts the poses
back to image pixels and scores them against the same annotations. The reference figures are those of
../shared/design/WEIGHTS.md (the reference decoder on maps rendered the same way).

    python benchmarks/oracle_maps.py [--data ../shared/data/coco] [--rows mmpose-tests,val2017-noise-0.05]

Prints one JSON object: {"rows": [{"data", "AP", "AP50", "AP75", "AR", ..., "reference_AP"}, ...], ...}.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from openpose_ros.evaluation.metrics import evaluate_oracle_maps  # noqa: E402

DEFAULT_DATA = os.path.join(HERE, '..', '..', 'shared', 'data', 'coco')
MMPOSE = ('mmpose-tests', 'test_coco.json')
VAL = ('coco-mini', 'annotations', 'person_keypoints_val2017.json')
TRAIN = ('coco-mini', 'annotations', 'person_keypoints_train2017.json')

# name: (annotation file, options of evaluate_oracle_maps, the reference decoder's AP from WEIGHTS.md)
ROWS = {
    'mmpose-tests': (MMPOSE, {}, 0.964),
    'coco-mini-val2017': (VAL, {}, 0.773),
    'coco-mini-train2017': (TRAIN, {}, 0.689),
    'val2017-noise-0.05': (VAL, {'noise_std': 0.05}, 0.566),
    'val2017-noise-0.1': (VAL, {'noise_std': 0.1}, 0.247),
    'val2017-blur-1': (VAL, {'blur_sigma': 1.0}, 0.733),
    'val2017-stride-16': (VAL, {'stride': 16}, 0.474),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=DEFAULT_DATA, help='folder holding mmpose-tests/ and coco-mini/')
    parser.add_argument('--rows', default=','.join(ROWS), help='comma-separated rows: ' + ', '.join(ROWS))
    parser.add_argument('--seed', type=int, default=0, help='seed of the noise rows')
    parser.add_argument('--upsample-ratio', type=int, default=4)
    parser.add_argument('--offset', type=float, default=0.0,
                        help='pixels added to keypoints (0.5 reproduces val.py, whose decoder needs it)')
    parser.add_argument('--no-bbox', dest='bbox', action='store_false',
                        help="write results without 'bbox' (as val.py: missing keypoints at (0, 0) then "
                             "stretch the area pycocotools gives a detection)")
    parser.add_argument('--verbose', action='store_true', help="show pycocotools' output")
    args = parser.parse_args(argv)

    rows = []
    for name in [r.strip() for r in args.rows.split(',') if r.strip()]:
        if name not in ROWS:
            parser.error(f'unknown row {name!r}; rows: {", ".join(ROWS)}')
        parts, options, reference = ROWS[name]
        start = time.perf_counter()
        metrics = evaluate_oracle_maps(os.path.join(args.data, *parts), verbose=args.verbose, seed=args.seed,
                                       upsample_ratio=args.upsample_ratio, offset=args.offset,
                                       bbox=args.bbox, **options)
        rows.append({'data': name, **{k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
                     'reference_AP': reference, 'seconds': round(time.perf_counter() - start, 2)})
    print(json.dumps({'rows': rows, 'upsample_ratio': args.upsample_ratio, 'offset': args.offset,
                      'bbox': args.bbox, 'seed': args.seed}, indent=1))


if __name__ == '__main__':
    main()
