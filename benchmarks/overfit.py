"""The overfit proof: train a small network on a handful of real COCO images until infer() finds their people.

Trains MobileNet v2 (width 0.25, no refinement stage, base height 256) from random weights on five annotated
photos of ../shared/data/coco/coco-mini/train2017 with the library's fit(), in chunks of --eval-every
iterations, each resuming exactly from the previous chunk's checkpoint, and evaluates keypoint AP on the same
images with eval() after every chunk. The first --plain-iterations see the photos exactly as inference does;
after that scale and position vary, and training stops once the AP reaches --target-ap (the claim is
AP >= 0.5). The model is then saved with learner.save (weights stored as float16, half the size; they load
into the float32 network unchanged), loaded back and evaluated again. A run stopped part-way continues from
the latest checkpoint in --temp-path. This is a TEST model: it knows these few images and nothing else.

    python benchmarks/overfit.py [--output test/models/tiny_coco] [--temp-path overfit_run] [--threads 1]

Prints one JSON object: AP on the training images (before and after saving), iterations, training seconds,
iterations/s, model size, the AP after every chunk; the progress goes to stderr. On a shared CPU, one torch
thread (--threads 1) is much faster than two threads fighting for the cores.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cv2  # noqa: E402
import torch  # noqa: E402

from openpose_ros import training  # noqa: E402
from openpose_ros.learner import LightweightOpenPoseLearner  # noqa: E402
from openpose_ros.training.datasets import Augmentation, CocoKeypoints  # noqa: E402

DEFAULT_DATA = HERE.parent.parent / 'shared' / 'data' / 'coco' / 'coco-mini'
# Five photos with six clearly visible, well-annotated people (15-17 keypoints each).
DEFAULT_IMAGES = (30752, 37666, 183872, 234748, 442450)
NETWORK = dict(backbone='mobilenetv2', mobilenetv2_width=0.25, num_refinement_stages=0, base_height=256)


def subset_annotations(path, image_ids):
    """The annotation file restricted to some images (a dict; the file itself is only read)."""
    with open(path, encoding='utf-8') as stream:
        dataset = json.load(stream)
    wanted = set(image_ids)
    subset = {key: value for key, value in dataset.items() if key not in ('images', 'annotations')}
    subset['images'] = [image for image in dataset['images'] if image['id'] in wanted]
    subset['annotations'] = [a for a in dataset['annotations'] if a['image_id'] in wanted]
    missing = wanted - {image['id'] for image in subset['images']}
    if missing:
        raise SystemExit(f'images not in {path}: {sorted(missing)}')
    return subset


def folder_size(path):
    return sum(f.stat().st_size for f in Path(path).rglob('*') if f.is_file())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=str(DEFAULT_DATA), help='a COCO folder with train2017/ and annotations/')
    parser.add_argument('--images', default=','.join(map(str, DEFAULT_IMAGES)), help='comma-separated image ids')
    parser.add_argument('--output', default=str(HERE.parent / 'test' / 'models' / 'tiny_coco'),
                        help='where the model folder is saved')
    parser.add_argument('--temp-path', default=None, help='checkpoints folder (default: a temporary one)')
    parser.add_argument('--max-iterations', type=int, default=1500)
    parser.add_argument('--eval-every', type=int, default=25, help='iterations between evaluations')
    parser.add_argument('--target-ap', type=float, default=0.6, help='stop once the AP on the images reaches this')
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--lr-drop', type=int, default=10 ** 6, help='iteration at which the learning rate x 0.333')
    parser.add_argument('--plain-iterations', type=int, default=625,
                        help='iterations on the exact inference geometry before scale and shift vary')
    parser.add_argument('--scale-range', type=float, nargs=2, default=[0.75, 1.1], help='then: random scale')
    parser.add_argument('--shift', type=float, default=24.0, help='then: pixels of random shift')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    parser.add_argument('--fp32', action='store_true', help='save float32 weights (twice the size)')
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    image_ids = [int(i) for i in args.images.split(',') if i.strip()]
    annotations = subset_annotations(os.path.join(args.data, 'annotations', 'person_keypoints_train2017.json'),
                                     image_ids)
    data = CocoKeypoints(os.path.join(args.data, 'train2017'), annotations)
    people = sum(1 for a in annotations['annotations'] if a.get('num_keypoints', 0) > 0 and not a.get('iscrowd'))
    temp = Path(args.temp_path or tempfile.mkdtemp(prefix='overfit_'))

    torch.manual_seed(args.seed)
    drop = args.lr_drop
    learner = LightweightOpenPoseLearner(
        device=args.device, lr=args.lr, batch_size=len(image_ids), epochs=10 ** 6, temp_path=temp,
        checkpoint_after_iter=10 ** 9, log_after=5, val_after=10 ** 9, num_workers=0, weights_only=False,
        experiment_name='overfit', lr_schedule=lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, [drop], 0.333),
        **NETWORK)
    # One sample per image, in the geometry inference uses (height scaled to 256, padded to the stride): first
    # exactly that (with variation from the start, the loss stays on its plateau far longer), then with some
    # scale and shift: a network that has only seen the exact training pixels finds nobody in the same photo
    # resized another way, and moved or rescaled frames of these images must work too.
    width = -(-max(round(i['width'] * 256 / i['height']) for i in annotations['images']) // 8) * 8
    crop = (256, max(width, 256))
    plain = Augmentation.none(crop_size=crop, sample='image')
    varied = Augmentation(crop_size=crop, sample='image', scale_range=tuple(args.scale_range), max_rotation=0.0,
                          center_perturbation=args.shift, flip_prob=0.0)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    log(f'training on {len(image_ids)} images ({people} people), crop {crop}, {NETWORK}')

    # A run stopped part-way continues from the latest checkpoint in --temp-path: the chunks resume exactly.
    progress_path = temp / 'progress.json'
    iteration = training.latest_checkpoint_iter(temp, learner.experiment_name)
    progress = json.loads(progress_path.read_text()) if iteration and progress_path.is_file() else {}
    if progress.get('iteration') != iteration:
        iteration, progress = 0, {}
    history, seconds, stats = progress.get('history', []), progress.get('seconds', 0.0), {}
    if iteration:
        log(f'continuing from iteration {iteration} ({seconds:.0f} s of training so far)')
    while iteration < args.max_iterations:
        in_plain = iteration < args.plain_iterations
        stop = min(iteration + args.eval_every, args.plain_iterations if in_plain else args.max_iterations)
        learner.checkpoint_load_iter = iteration
        result = training.fit(learner, data, silent=True, augmentation=plain if in_plain else varied,
                              seed=args.seed, max_iterations=stop, init_weights='current')
        seconds += result.seconds
        for old in training.checkpoint_iterations(temp, learner.experiment_name):
            if old != result.iteration:
                training.checkpoint_path(temp, learner.experiment_name, old).unlink()
        iteration = result.iteration
        stats = learner.eval(data, silent=True, use_subset=False)
        loss = result.losses[-1]['loss'] if result.losses else float('nan')
        phase = 'plain' if in_plain else 'varied'
        history.append({'iteration': iteration, 'phase': phase, 'loss': loss, 'AP': stats['AP'],
                        'seconds': round(seconds, 1)})
        progress_path.write_text(json.dumps({'iteration': iteration, 'seconds': seconds, 'history': history}))
        log(f'iteration {iteration} ({phase}): loss {loss:.2f}, AP {stats["AP"]:.3f}, AR {stats["AR"]:.3f}, '
            f'{seconds:.0f} s training ({iteration / seconds:.2f} it/s)')
        if not in_plain and stats['AP'] >= args.target_ap:
            break

    if not args.fp32:
        learner.model.half()
    output = Path(args.output)
    learner.save(output)
    learner.model.float()
    reloaded = LightweightOpenPoseLearner(device='cpu', temp_path=temp, **NETWORK)
    reloaded.load(output)
    final = reloaded.eval(data, silent=True, use_subset=False)
    found = {}
    for image in annotations['images']:
        poses = reloaded.infer(cv2.imread(os.path.join(data.images_dir, image['file_name'])), track=False,
                               smooth=False)
        found[image['file_name']] = len(poses)
    report = {
        'images': image_ids, 'people': people, 'network': NETWORK, 'crop_size': crop,
        'iterations': iteration, 'plain_iterations': args.plain_iterations, 'batch_size': len(image_ids),
        'training_seconds': round(seconds, 1), 'iterations_per_s': round(iteration / seconds, 3),
        'images_per_s': round(iteration * len(image_ids) / seconds, 2),
        'device': args.device, 'torch_threads': torch.get_num_threads(),
        'AP_before_save': stats.get('AP'), 'AP': final['AP'], 'AP50': final['AP50'], 'AR': final['AR'],
        'poses_found': found, 'model': str(output), 'model_bytes': folder_size(output),
        'weights_dtype': 'float32' if args.fp32 else 'float16', 'history': history,
    }
    print(json.dumps(report, indent=2))
    if not args.temp_path:
        shutil.rmtree(temp, ignore_errors=True)
    return 0 if final['AP'] >= 0.5 else 1


if __name__ == '__main__':
    sys.exit(main())
