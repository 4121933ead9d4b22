"""Agreement of OpenVINO (bf16, fp32, and int8) with ONNX Runtime fp32: map error, keypoint displacement and pose
agreement on real images, measured as int8_agreement.py measures int8.

    python benchmarks/openvino_agreement.py --weights test/models/tiny_coco [--precisions fp32,bf16,int8]

Evaluation images: the coco-mini val2017 photos, the mmpose-tests photos, the opencv-doc photos and every 40th
frame of vtest.avi, plus the --evaluate-train-ids photos (the ones a test model knows), plus with
--all-train-photos every other coco-mini train2017 photo that int8 does not calibrate on (a larger sample: bf16
and fp32 calibrate on nothing). int8 quantises the model (minmax) on coco-mini train2017 photos, disjoint from
those. Prints one JSON document: per precision,
compare_backends' figures and the network's time on one photo beside ONNX Runtime fp32's.
"""
import argparse
import sys
import tempfile
from pathlib import Path

from int8_agreement import COCO, calibration_images, emit, evaluation_images, network_ms, rounded

PRECISIONS = ('fp32', 'bf16', 'int8')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', required=True, help='saved model folder or checkpoint file')
    parser.add_argument('--precisions', default='fp32,bf16', help=f'OpenVINO precisions: {",".join(PRECISIONS)}')
    parser.add_argument('--threads', type=int, default=2, help='inference threads of both runtimes (default 2)')
    parser.add_argument('--calibration-images', type=int, default=64, help='for int8')
    parser.add_argument('--evaluate-train-ids', default='',
                        help='coco-mini train2017 image ids to evaluate on too (and keep out of calibration), e.g. '
                             'the images a test model was trained on: 30752,37666,183872,234748,442450')
    parser.add_argument('--all-train-photos', action='store_true',
                        help='also evaluate on every other coco-mini train2017 photo not used for int8 calibration')
    parser.add_argument('--output', help='also write the JSON here')
    args = parser.parse_args(argv)
    precisions = [p.strip() for p in args.precisions.split(',') if p.strip()]
    if not set(precisions) <= set(PRECISIONS):
        parser.error(f'--precisions: one or more of {",".join(PRECISIONS)}')

    import cv2
    from openpose_ros import LightweightOpenPoseLearner
    from openpose_ros.runtime.backends import OnnxBackend
    from openpose_ros.runtime.export import export_onnx
    from openpose_ros.runtime.openvino import OpenVinoBackend, device_capabilities
    from openpose_ros.evaluation.agreement import compare_backends
    from openpose_ros.runtime.quantize import Preprocessing, quantize_onnx

    learner = LightweightOpenPoseLearner(device='cpu').load(args.weights)
    preprocessing = Preprocessing(learner.base_height, learner.stride, tuple(learner.img_mean), learner.img_scale,
                                  tuple(learner.pad_value))
    extra = [COCO / 'coco-mini' / 'train2017' / f'{int(i):012d}.jpg' for i in args.evaluate_train_ids.split(',')
             if i.strip()]
    calibration = calibration_images(args.calibration_images, exclude=extra) if 'int8' in precisions else []
    others = ([p for p in sorted((COCO / 'coco-mini' / 'train2017').glob('*.jpg')) if p not in extra + calibration]
              if args.all_train_photos else [])
    images = evaluation_images(extra + others)
    photo = cv2.imread(str(COCO / 'mmpose-tests' / '000000000785.jpg'))
    doc = {'weights': args.weights, 'base_height': learner.base_height, 'stride': learner.stride,
           'threads': args.threads, 'cpu_capabilities': list(device_capabilities()),
           'reference': 'ONNX Runtime fp32',
           'evaluation': f'{len(images)} real images ({len(extra)} coco-mini train2017 the model knows, '
                         f'{len(others)} other coco-mini train2017, the val2017 ones, mmpose-tests, opencv-doc photos, '
                         f'vtest.avi every 40th frame)', 'precisions': {}}
    with tempfile.TemporaryDirectory() as work:
        fp32 = export_onnx(learner.model.eval(), Path(work) / 'model.onnx')
        reference = OnnxBackend(fp32, threads=args.threads)
        doc['onnxruntime_fp32_network_ms'] = network_ms(reference, photo, preprocessing)
        for precision in precisions:
            if precision == 'int8':
                model = quantize_onnx(fp32, Path(work) / 'model.int8.onnx', calibration, preprocessing)
                candidate = OpenVinoBackend(model, threads=args.threads)
            else:
                candidate = OpenVinoBackend(fp32, precision, threads=args.threads)
            result = compare_backends(reference, candidate, images, preprocessing)
            if extra:  # the photos the model knows, on their own: where its people really are
                result['on_the_train_ids_only'] = rounded(
                    compare_backends(reference, candidate, images[:len(extra)], preprocessing))
            result.update(runs=candidate.name, network_ms=network_ms(candidate, photo, preprocessing))
            doc['precisions'][precision] = rounded(result)
            print(f'[openvino] {precision}: done', file=sys.stderr)
    emit(doc, args.output)


if __name__ == '__main__':
    main()
