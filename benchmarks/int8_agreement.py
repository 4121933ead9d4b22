"""Agreement of the int8 model with fp32: map error, keypoint displacement and pose agreement on real images.

    python benchmarks/int8_agreement.py --weights test/models/tiny_coco [--methods minmax,percentile]
    python benchmarks/int8_agreement.py --random-weights     (plumbing only: an untrained network)

Calibration and evaluation images are disjoint: calibration on COCO train2017 photos of coco-mini; evaluation
on the coco-mini val2017 photos, the mmpose-tests photos, the opencv-doc photos and every 40th frame of
vtest.avi. Prints one JSON document (per calibration method: compare_backends' figures, and timings of both).
--random-weights sets the untrained network's batch-norm statistics from real images so that its maps depend
on the image; its figures say whether the plumbing works, nothing about a trained model.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
DATA = HERE.parent.parent / 'shared' / 'data'
COCO = DATA / 'coco'


def evaluation_images(extra=(), video_step=40):
    import cv2
    paths = (list(extra) + sorted((COCO / 'coco-mini' / 'val2017').glob('*.jpg'))
             + sorted((COCO / 'mmpose-tests').glob('*.jpg')) + sorted((DATA / 'images').iterdir()))
    images = [cv2.imread(str(p)) for p in paths]
    capture = cv2.VideoCapture(str(DATA / 'video' / 'vtest.avi'))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % video_step == 0:
            images.append(frame)
        index += 1
    return images


def calibration_images(count, exclude=()):
    import numpy as np
    paths = [p for p in sorted((COCO / 'coco-mini' / 'train2017').glob('*.jpg')) if p not in set(exclude)]
    return [paths[i] for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).round().astype(int)]


def network_ms(backend, image, preprocessing, runs=20):
    batch = preprocessing.batch(image)
    for _ in range(3):
        backend.run(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        backend.run(batch)
        times.append((time.perf_counter() - start) * 1e3)
    return round(statistics.median(times), 2)


def rounded(figures):
    """Four significant digits: small errors (OpenVINO fp32's are about 1e-6) must not round to 0."""
    return {k: float(f'{v:.4g}') if isinstance(v, float) else v for k, v in figures.items()}


def emit(doc, output=None):
    """Prints the JSON document and, with `output`, writes it there atomically."""
    from openpose_ros.files import write_text
    text = json.dumps(doc, indent=1)
    if output:
        write_text(output, text + '\n')
    print(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', help='saved model folder or checkpoint file')
    parser.add_argument('--random-weights', action='store_true', help='untrained network (plumbing only)')
    parser.add_argument('--base-height', type=int, help="default: the model's (256)")
    parser.add_argument('--backbone', default='mobilenet', help='of a checkpoint file (a saved folder says)')
    parser.add_argument('--mobilenetv2-width', type=float, default=1.0)
    parser.add_argument('--num-refinement-stages', type=int, default=1)
    parser.add_argument('--calibration-images', type=int, default=64)
    parser.add_argument('--methods', default='minmax,percentile', help='calibration methods: minmax,percentile,entropy')
    parser.add_argument('--evaluate-train-ids', default='',
                        help='coco-mini train2017 image ids to evaluate on (and keep out of calibration), e.g. the '
                             'images a test model was trained on: 30752,37666,183872,234748,442450')
    parser.add_argument('--output', help='also write the JSON here')
    args = parser.parse_args(argv)
    if bool(args.weights) == bool(args.random_weights):
        parser.error('give --weights or --random-weights')

    import cv2
    import torch
    from openpose_ros import LightweightOpenPoseLearner
    from openpose_ros.runtime.backends import OnnxBackend
    from openpose_ros.runtime.export import export_onnx
    from openpose_ros.evaluation.agreement import compare_backends
    from openpose_ros.runtime.quantize import Preprocessing, load_images, quantize_onnx

    torch.manual_seed(0)
    learner = LightweightOpenPoseLearner(device='cpu', backbone=args.backbone, mobilenetv2_width=args.mobilenetv2_width,
                                         num_refinement_stages=args.num_refinement_stages)
    if args.weights:
        learner.load(args.weights)
    if args.base_height:
        learner.base_height = args.base_height
    preprocessing = Preprocessing(learner.base_height, learner.stride, tuple(learner.img_mean), learner.img_scale,
                                  tuple(learner.pad_value))
    extra = [COCO / 'coco-mini' / 'train2017' / f'{int(i):012d}.jpg' for i in args.evaluate_train_ids.split(',')
             if i.strip()]
    missing = [p for p in extra if not p.is_file()]
    if missing:
        parser.error(f'no such images: {missing}')
    calibration = calibration_images(args.calibration_images, exclude=extra)
    if args.random_weights:
        network = learner.model
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None
        network.train()
        with torch.no_grad():
            for image in load_images(calibration[:16]):
                network(torch.from_numpy(preprocessing.batch(image)))
        network.eval()
    images = evaluation_images(extra)
    doc = {'weights': args.weights or 'untrained (seed 0, batch-norm statistics from real images): plumbing only',
           'base_height': learner.base_height, 'stride': learner.stride,
           'calibration': f'{len(calibration)} coco-mini train2017 photos',
           'evaluation': f'{len(images)} real images ({len(extra)} coco-mini train2017, the val2017 ones, '
                         f'mmpose-tests, opencv-doc photos, vtest.avi every 40th frame)', 'methods': {}}
    with tempfile.TemporaryDirectory() as work:
        fp32 = export_onnx(learner.model.eval(), Path(work) / 'model.onnx')
        reference = OnnxBackend(fp32)
        photo = cv2.imread(str(COCO / 'mmpose-tests' / '000000000785.jpg'))
        doc['fp32_network_ms'] = network_ms(reference, photo, preprocessing)
        for method in [m.strip() for m in args.methods.split(',') if m.strip()]:
            started = time.perf_counter()
            int8 = quantize_onnx(fp32, Path(work) / f'{method}.int8.onnx', calibration, preprocessing, method=method)
            seconds = time.perf_counter() - started
            candidate = OnnxBackend(int8)
            result = compare_backends(reference, candidate, images, preprocessing)
            if extra:  # the photos the model knows, on their own: where its people really are
                result['on_the_train_ids_only'] = rounded(
                    compare_backends(reference, candidate, images[:len(extra)], preprocessing))
            result.update(quantisation_seconds=round(seconds, 1),
                          int8_network_ms=network_ms(candidate, photo, preprocessing),
                          size_mib=round(os.path.getsize(int8) / 2 ** 20, 2))
            doc['methods'][method] = rounded(result)
            print(f'[int8] {method}: done', file=sys.stderr)
    emit(doc, args.output)


if __name__ == '__main__':
    main()
