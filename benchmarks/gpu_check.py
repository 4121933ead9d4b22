"""The GPU check: the CUDA tests and the GPU's figures, in one run of a few minutes.

    python benchmarks/gpu_check.py [--output out/gpu_check.json] [--quick] [--no-tests]

1. Tests: pytest on test/test_cuda.py in a subprocess (inference in fp32/fp16 against the CPU on the test model,
   device='auto', save/load across devices, fit and exact resumption, ONNX export); passed/failed/skipped and
   each case's outcome; and the figures behind the agreement tests (map errors, keypoint displacement, pose
   agreement of CUDA fp32 and fp16 against the CPU on the trained test model) beside their tolerances.
2. The pipeline on the GPU (torch, `device='cuda'`) for OpenDR's configurations, whose published figures are
   RTX 2070 FPS: baseline (MobileNet, 2 refinement stages, stride 8), half precision, stride 16
   (mobilenet_use_stride), 0 refinement stages, and all three. A real photo at 640x425, base height 256
   (network input 256x392 at stride 8): medians of every stage (the estimator's `timings`), the whole call and
   its FPS, as benchmarks/bench.py measures them; the network alone timed with CUDA events on an input already
   on the GPU; ratios against the baseline and fp16 against fp32, measured in this run, beside the published
   ones (absolute FPS depend on the GPU and CPU; ratios travel better).
3. Training: iterations per second of fit() at batch sizes 4, 8 and 16 on the real COCO photos of
   ../shared/data/coco/coco-mini (the reference's 368x368 crops and augmentation, data loading included).
4. Peak GPU memory (torch.cuda.max_memory_allocated) of each measurement.

The timed networks have untrained weights (seed 0): speed does not depend on weight values. Agreement with the
CPU is the tests' business, on the trained test model. Every pipeline call ends by copying the maps to the CPU,
which waits for the GPU, so wall-clock stage times are complete.

Prints one JSON document and writes it atomically to --output. Exits 1 when a test failed or a measurement
broke (the document says which), 0 otherwise. Without a CUDA device it says so, writes {"cuda": false,
"reason": ...} and exits 0 at once.

It reads ../shared/data beside the checkout (as the tests do); on a machine where the data is elsewhere, link it
there first (mkdir -p ../shared && ln -s /path/to/data ../shared/data).
"""
import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
import bench  # noqa: E402  (its measurement helpers and settings)
from openpose_ros.files import write_text  # noqa: E402

DEFAULT_OUTPUT = ROOT / 'out' / 'gpu_check.json'
IMAGE_SIZE = (640, 425)  # width, height: the published figures' input
COCO_MINI = bench.DATA / 'coco' / 'coco-mini'
# OpenDR's configurations and their published FPS on an RTX 2070 (None: not published).
CONFIGS = {
    'baseline': (dict(num_refinement_stages=2), 50.1),
    'half precision': (dict(num_refinement_stages=2, half_precision=True), 47.5),
    'stride 16': (dict(num_refinement_stages=2, mobilenet_use_stride=True), 72.1),
    '0 refinement stages': (dict(num_refinement_stages=0), None),
    'all three': (dict(num_refinement_stages=0, mobilenet_use_stride=True, half_precision=True), 98.2),
}
TRAINING_NETWORK = dict(num_refinement_stages=1, mobilenet_use_stride=False)  # the published model's
TEST_FILE = 'test/test_cuda.py'
TOLERANCES = ('MAP_MEAN_ERROR_MAX', 'MAP_MAX_ERROR_MAX', 'SUBSTANTIAL_POSE_AGREEMENT_MIN',
              'KEYPOINT_DISPLACEMENT_MEDIAN_MAX_PX', 'KEYPOINT_DISPLACEMENT_P95_MAX_PX')  # of test_cuda
TEST_TIMEOUT_S = 300
NEEDED_MODULES = ('cv2', 'onnx', 'onnxruntime', 'pycocotools', 'pytest', 'tqdm')


def log(message):
    print(f'[gpu_check] {message}', file=sys.stderr, flush=True)


def no_cuda_reason():
    """Why torch cannot use CUDA here, or None when it can."""
    try:
        import torch
    except ImportError as error:
        return f'torch cannot be imported ({error})'
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f'this torch ({torch.__version__}) is a CPU-only build: install a CUDA build of torch'
    return (f'torch {torch.__version__} (CUDA {torch.version.cuda}) finds no CUDA device '
            f'(no GPU or driver, or CUDA_VISIBLE_DEVICES={os.environ.get("CUDA_VISIBLE_DEVICES", "unset")!r})')


def machine():
    import onnxruntime
    import torch
    properties = torch.cuda.get_device_properties(0)
    return {
        'gpu': properties.name, 'compute_capability': f'{properties.major}.{properties.minor}',
        'gpu_memory_gib': round(properties.total_memory / 2 ** 30, 1), 'gpus': torch.cuda.device_count(),
        'torch': torch.__version__, 'cuda': torch.version.cuda, 'cudnn': torch.backends.cudnn.version(),
        'onnxruntime': onnxruntime.__version__,
        'onnxruntime_cuda': 'CUDAExecutionProvider' in onnxruntime.get_available_providers(),
        'cpu': bench.machine().get('cpu'), 'cores_usable': len(os.sched_getaffinity(0)),
        'python': platform.python_version(),
    }


def mib(count):
    return round(count / 2 ** 20, 1)


# --- 1. the tests -----------------------------------------------------------------------------------------------
def run_tests(work):
    """pytest on the CUDA tests in a subprocess; the counts and every case's outcome, from its JUnit report."""
    report = Path(work) / 'junit.xml'
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''),
               CUBLAS_WORKSPACE_CONFIG=os.environ.get('CUBLAS_WORKSPACE_CONFIG', ':4096:8'))
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rA', '-p', 'no:cacheprovider', TEST_FILE,
                               f'--junitxml={report}'], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {'error': f'pytest did not finish within {TEST_TIMEOUT_S} s'}
    result = {'exit_code': done.returncode, 'seconds': round(time.perf_counter() - started, 1)}
    if not report.is_file():
        return dict(result, error='pytest wrote no report', output_tail=(done.stdout + done.stderr)[-3000:])
    cases = [_case(element) for element in ElementTree.parse(report).iter('testcase')]
    for outcome in ('passed', 'failed', 'skipped'):
        result[outcome] = sum(case['outcome'] == outcome for case in cases)
    result['cases'] = cases
    if result['failed'] or done.returncode not in (0, 5):
        result['output_tail'] = done.stdout[-4000:]
    return result


def _case(element):
    outcome, message = 'passed', None
    for child in element:
        if child.tag in ('failure', 'error', 'skipped'):
            outcome = 'skipped' if child.tag == 'skipped' else 'failed'
            text = (child.get('message') or '').strip() or child.tag
            message = text.splitlines()[0][:300]
    case = {'name': element.get('name'), 'outcome': outcome, 'seconds': round(float(element.get('time', 0)), 2)}
    if message:
        case['message'] = message
    return case


# --- 2. the pipeline ----------------------------------------------------------------------------------------------
def reference_image():
    import cv2
    image = cv2.imread(str(bench.REFERENCE_IMAGE))
    if image is None:
        raise FileNotFoundError(f'the reference photo {bench.REFERENCE_IMAGE} is missing (../shared/data)')
    if (image.shape[1], image.shape[0]) != IMAGE_SIZE:
        image = cv2.resize(image, IMAGE_SIZE, interpolation=cv2.INTER_AREA)
    return image


def network_ms(backend, batch, runs, warmup):
    """Median milliseconds of the network alone on an input already on the GPU, timed with CUDA events."""
    import torch
    tensor = torch.from_numpy(batch).to(backend.device)
    tensor = tensor.half() if backend.half else tensor
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            backend.network(tensor)
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            backend.network(tensor)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    return round(statistics.median(times), 3)


def measure_pipeline(options, image, runs, warmup):
    """The learner's pipeline on CUDA with untrained weights: stage medians, FPS, network alone, peak memory."""
    import torch
    from openpose_ros import LightweightOpenPoseLearner
    from openpose_ros.runtime.quantize import Preprocessing
    torch.manual_seed(0)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    learner = LightweightOpenPoseLearner(device='cuda', **options)
    estimator = learner.estimator
    result = bench._measure(estimator, image, runs, warmup)
    batch = Preprocessing(learner.base_height, learner.stride).batch(image)
    result.update(backend=estimator.backend.name, stride=learner.stride, network_input=list(batch.shape[2:]),
                  network_alone_ms=network_ms(estimator.backend, batch, runs, warmup),
                  peak_gpu_memory_mib=mib(torch.cuda.max_memory_allocated()))
    return result


def ratios(pipeline):
    """FPS against the baseline's, and fp16 against fp32, measured here and as published."""
    def fps_ratio(a, b, key='fps'):
        return bench.ratio(pipeline.get(a, {}).get(key), pipeline.get(b, {}).get(key))

    published = {name: fps for name, (_, fps) in CONFIGS.items()}
    doc = {'fps_vs_baseline': {name: {'measured': fps_ratio(name, 'baseline'),
                                      'published_rtx2070': bench.ratio(published[name], published['baseline'])}
                               for name in CONFIGS if name != 'baseline'}}
    doc['fp16_vs_fp32'] = {
        'pipeline_fps': {'measured': fps_ratio('half precision', 'baseline'),
                         'published_rtx2070': bench.ratio(published['half precision'], published['baseline'])},
        # network time fp32 / fp16: above 1 when fp16 is faster
        'network_alone_speedup': bench.ratio(pipeline.get('baseline', {}).get('network_alone_ms'),
                                             pipeline.get('half precision', {}).get('network_alone_ms')),
    }
    return doc


def measure_agreement():
    """The tests' agreement figures of CUDA fp32 and fp16 against the CPU, on the trained test model."""
    sys.path.insert(0, str(ROOT / 'test'))
    import test_cuda
    from openpose_ros.evaluation.agreement import compare_backends
    from openpose_ros.runtime.quantize import Preprocessing
    cpu = test_cuda.load_test_model('cpu')
    preprocessing = Preprocessing(cpu.base_height, cpu.stride)
    doc = {'model': 'test/models/tiny_coco', 'images': len(test_cuda.AGREEMENT_IMAGES),
           'tolerances_of_the_tests': {name.lower(): getattr(test_cuda, name) for name in TOLERANCES}}
    for label, half in (('fp32', False), ('fp16', True)):
        gpu = test_cuda.load_test_model('cuda', half_precision=half)
        result = compare_backends(cpu.estimator.backend, gpu.estimator.backend, test_cuda.AGREEMENT_IMAGES,
                                  preprocessing)
        doc[label] = {key: round(value, 6) if isinstance(value, float) else value for key, value in result.items()}
    return doc


# --- 3. training --------------------------------------------------------------------------------------------------
def measure_training(batch_size, iterations, work):
    """fit() on CUDA on the coco-mini photos: the median of the per-iteration rates after two warm-up iterations."""
    import torch
    from openpose_ros import LightweightOpenPoseLearner, training
    from openpose_ros.training.datasets import CocoTrainDataset
    torch.manual_seed(0)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    workers = min(8, len(os.sched_getaffinity(0)))
    learner = LightweightOpenPoseLearner(
        device='cuda', batch_size=batch_size, num_workers=workers, log_after=1, checkpoint_after_iter=10 ** 6,
        val_after=10 ** 6, temp_path=str(Path(work) / f'train{batch_size}'), **TRAINING_NETWORK)
    dataset = CocoTrainDataset(COCO_MINI / 'train2017',
                               COCO_MINI / 'annotations' / 'person_keypoints_train2017.json')
    result = training.fit(learner, dataset, silent=True, max_iterations=iterations, init_weights='current')
    rates = [entry['iterations_per_s'] for entry in result.losses[2:]]
    losses = [entry['loss'] for entry in result.losses]
    return {'iterations': result.iterations_run, 'iterations_per_s': round(statistics.median(rates), 2),
            'samples_per_s': round(statistics.median(rates) * batch_size, 1),
            'iterations_per_s_whole_run': round(result.iterations_per_second, 2), 'num_workers': workers,
            'losses_finite': all(math.isfinite(loss) for loss in losses),
            'peak_gpu_memory_mib': mib(torch.cuda.max_memory_allocated())}


# --- the run ------------------------------------------------------------------------------------------------------
def attempt(doc, label, function, *args):
    """function(*args), its exception recorded in doc['errors'] instead of ending the run."""
    try:
        return function(*args)
    except Exception as error:  # one broken measurement must not cost the others
        log(f'{label}: {type(error).__name__}: {error}')
        doc['errors'].append({'measurement': label, 'error': f'{type(error).__name__}: {error}'})
        return None


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', type=Path, default=DEFAULT_OUTPUT,
                        help='where the JSON document is written, atomically (default out/gpu_check.json)')
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: by default 20 timed runs, 5 warm-up, batch size 4, 6 training iterations')
    parser.add_argument('--runs', type=int,
                        help='timed pipeline runs per configuration, 1-10000 (default 200, --quick 20)')
    parser.add_argument('--warmup', type=int, help='untimed runs first, 0-1000 (default 20, --quick 5)')
    parser.add_argument('--batch-sizes', help='training batch sizes, each 1-256 (default 4,8,16; --quick 4)')
    parser.add_argument('--train-iterations', type=int,
                        help='training iterations per batch size, 3-1000 (default 20, --quick 6; the first 2 '
                             'are warm-up)')
    parser.add_argument('--no-tests', action='store_true', help='measure only; do not run test/test_cuda.py')
    return parser


def settings_from(parser, args):
    def chosen(value, quick, default):
        return value if value is not None else quick if args.quick else default

    runs, warmup = chosen(args.runs, 20, 200), chosen(args.warmup, 5, 20)
    iterations = chosen(args.train_iterations, 6, 20)
    sizes = chosen(args.batch_sizes, '4', '4,8,16')
    try:
        batch_sizes = [int(size) for size in sizes.split(',')]
    except ValueError:
        parser.error(f'--batch-sizes must be comma-separated integers, not {sizes!r}')
    for name, value, low, high in (('--runs', runs, 1, 10000), ('--warmup', warmup, 0, 1000),
                                   ('--train-iterations', iterations, 3, 1000)):
        if not low <= value <= high:
            parser.error(f'{name} must be in [{low}, {high}], got {value}')
    if not all(1 <= size <= 256 for size in batch_sizes):
        parser.error(f'--batch-sizes must each be in [1, 256], got {batch_sizes}')
    return runs, warmup, batch_sizes, iterations


def header(runs, warmup):
    """The document's first part: the machine, the settings, the packages missing for tests and training."""
    import torch
    doc = {'cuda': True, 'machine': machine(), 'errors': [],
           'settings': {'image': '../shared/data/' + str(bench.REFERENCE_IMAGE.relative_to(bench.DATA)),
                        'image_size': list(IMAGE_SIZE), 'base_height': bench.BASE_HEIGHT,
                        'upsample_ratio': bench.UPSAMPLE_RATIO, 'runs': runs, 'warmup': warmup,
                        'statistic': 'median', 'backend': 'torch eager on CUDA',
                        'cudnn_tf32': torch.backends.cudnn.allow_tf32,
                        'cudnn_benchmark': torch.backends.cudnn.benchmark,
                        'weights': 'untrained (seed 0) for timing: speed does not depend on weight values; '
                                   'agreement_with_cpu uses the trained test model'}}
    doc['missing_packages'] = [name for name in NEEDED_MODULES if importlib.util.find_spec(name) is None]
    if doc['missing_packages']:
        log(f'missing packages (tests and training need them): {", ".join(doc["missing_packages"])}')
    return doc


def measure_pipelines(doc, runs, warmup):
    doc['pipeline'] = {}
    image = attempt(doc, 'reference image', reference_image)
    for name, (options, published) in CONFIGS.items():
        if image is None:
            break
        log(f'pipeline: {name}, {warmup} + {runs} runs')
        measured = attempt(doc, f'pipeline {name}', measure_pipeline, options, image, runs, warmup)
        if measured:
            doc['pipeline'][name] = dict(options=options, published_fps_rtx2070=published, **measured)
    doc['ratios'] = ratios(doc['pipeline'])


def measure_trainings(doc, batch_sizes, iterations, work):
    doc['training'] = {'network': dict(backbone='mobilenet', **TRAINING_NETWORK), 'crop': [368, 368],
                       'images': '../shared/data/coco/coco-mini/train2017', 'batch_sizes': {}}
    for size in batch_sizes:
        log(f'training: batch size {size}, {iterations} iterations')
        measured = attempt(doc, f'training batch {size}', measure_training, size, iterations, work)
        if measured:
            doc['training']['batch_sizes'][str(size)] = measured


def broken(doc):
    """A measurement raised, or a test failed (pytest's exit code 5, nothing collected, is no failure)."""
    tests = doc.get('tests') or {}
    return bool(doc['errors']) or tests.get('failed', 0) > 0 or tests.get('exit_code', 0) not in (0, 5)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    runs, warmup, batch_sizes, iterations = settings_from(parser, args)
    started = time.perf_counter()
    reason = no_cuda_reason()
    if reason:
        log(f'no CUDA device is available: {reason}. Nothing was measured.')
        return finish({'cuda': False, 'reason': reason, 'measured': False}, args.output, 0)
    doc = header(runs, warmup)
    with tempfile.TemporaryDirectory(prefix='openpose-gpu-check-') as work:
        if not args.no_tests:
            log(f'pytest {TEST_FILE}')
            doc['tests'] = attempt(doc, 'tests', run_tests, work)
        measure_pipelines(doc, runs, warmup)
        log('agreement with the CPU on the test model')
        doc['agreement_with_cpu'] = attempt(doc, 'agreement', measure_agreement)
        measure_trainings(doc, batch_sizes, iterations, work)
    memory = [entry['peak_gpu_memory_mib'] for section in (doc['pipeline'], doc['training']['batch_sizes'])
              for entry in section.values()]
    doc['peak_gpu_memory_mib'] = max(memory) if memory else None
    doc['seconds'] = round(time.perf_counter() - started, 1)
    return finish(doc, args.output, 1 if broken(doc) else 0)


def finish(doc, output, code):
    text = json.dumps(doc, indent=1)
    write_text(output, text + '\n')
    print(text)
    log(f'written to {output}')
    return code


if __name__ == '__main__':
    sys.exit(main())
