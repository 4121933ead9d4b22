"""Speed of the whole pipeline, stage by stage: torch eager vs ONNX Runtime fp32 and int8 vs OpenVINO fp32, bf16
and int8 (the same int8 model), 1 and 2 threads.

    python benchmarks/bench.py [--quick] [--output bench.json]

Prints one JSON document on stdout (progress goes to stderr). For each network configuration of
../shared/design/PERFORMANCE.md it measures, on a real photo at base height 256 (000000000785.jpg, 640x425 ->
network input 256x392), the milliseconds of every stage (preprocess, network, upsample, keypoints, grouping,
tracking), the total and the FPS, as medians over --runs runs after --warmup runs, each backend in its own
process (torch and ONNX Runtime in one process fight over the cores). Ratios are against the torch-eager
pipeline of the same configuration and thread count, measured in the same run.

The networks have untrained weights (seed 0): network speed does not depend on weight values, but such a
network finds no one, so post-processing is measured separately on oracle maps: the maps that the real
annotations of real COCO photos with 3 and 11 people render to, at the network's map size, run through the
same estimator (preprocessing of the real photo, upsampling, keypoints, grouping, tracking and smoothing).
`pipeline_with_people` adds them up: preprocess + network + post-processing of 3 or 11 people.

Also reported: the fp32 floor (network GFLOP / this CPU's fp32 matmul GFLOP/s at that thread count), the peak
RSS of each measuring process, and that the ONNX Runtime processes never imported torch (nor the OpenVINO ones
torch or onnxruntime). `user_process_peak_rss` is the memory a user's process needs: a process that imports what
running the pipeline takes (cv2, the estimator, one backend) and nothing of this benchmark, runs the pipeline on
the photo and reports its peak RSS (VmHWM), in MiB and in MB (10^6 bytes, the issues' unit). Every measurement
records the CPU time other processes used meanwhile (other_processes_cpu_percent, of both cores; and the
hypervisor's steal time): figures with more than a few percent are disturbed, and torch's 2-thread figures most
of all.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / 'shared' / 'data'
REFERENCE_IMAGE = DATA / 'coco' / 'mmpose-tests' / '000000000785.jpg'
BASE_HEIGHT = 256
UPSAMPLE_RATIO = 4

# name: network options (PERFORMANCE.md's rows)
CONFIGS = {
    'mobilenet-1stage-stride8': dict(num_refinement_stages=1, mobilenet_use_stride=False),   # original demo
    'mobilenet-2stages-stride8': dict(num_refinement_stages=2, mobilenet_use_stride=False),  # OpenDR ROS default
    'mobilenet-2stages-stride16': dict(num_refinement_stages=2, mobilenet_use_stride=True),  # OpenDR learner default
    'mobilenet-0stages-stride16': dict(num_refinement_stages=0, mobilenet_use_stride=True),  # OpenDR "accelerate"
}
# Real COCO photos and their official annotations: (label, annotation file, image file name)
PEOPLE = {
    '3 people': ('coco/coco-mini/annotations/person_keypoints_val2017.json', 'coco/coco-mini/val2017/000000311002.jpg'),
    '11 people': ('coco/coco-mini/annotations/person_keypoints_train2017.json',
                  'coco/coco-mini/train2017/000000370162.jpg'),
}
BACKENDS = ('torch', 'onnx', 'int8', 'openvino-fp32', 'openvino-bf16', 'openvino-int8')
OPENVINO_MODELS = {'openvino-fp32': 'onnx', 'openvino-bf16': 'onnx', 'openvino-int8': 'int8'}  # which file each runs
STAGES = ('preprocess', 'network', 'upsample', 'keypoints', 'grouping', 'tracking', 'smoothing')
POSTPROCESSING = ('upsample', 'keypoints', 'grouping', 'tracking', 'smoothing')


def log(message):
    print(f'[bench] {message}', file=sys.stderr, flush=True)


# --- workers (each in its own process) --------------------------------------------------------------------
def _limit_threads(threads):
    import cv2
    cv2.setNumThreads(threads)


def _peak_rss_mib():
    """This process's peak resident memory (VmHWM; getrusage's ru_maxrss carries the parent's over exec)."""
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def _cpu_ticks():
    """(busy, steal) clock ticks of the whole machine, from /proc/stat."""
    with open('/proc/stat') as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


class _Interference:
    """How much CPU others used while we measured: the machine's busy time minus this process's own, as a
    percentage of the cores' time (0 on a quiet machine), and the hypervisor's steal time likewise."""

    def __enter__(self):
        self.wall, self.own, self.ticks = time.perf_counter(), time.process_time(), _cpu_ticks()
        return self

    def __exit__(self, *_):
        hertz = os.sysconf('SC_CLK_TCK')
        wall = time.perf_counter() - self.wall
        own = time.process_time() - self.own
        busy, steal = (b - a for a, b in zip(self.ticks, _cpu_ticks()))
        capacity = wall * (os.cpu_count() or 1)
        self.others_percent = round(max(0.0, busy / hertz - own) / capacity * 100, 1)
        self.steal_percent = round(steal / hertz / capacity * 100, 1)


def _measure(estimator, image, runs, warmup):
    """Medians of every stage and of the whole per-frame pipeline (tracking and smoothing on), over `runs` after
    `warmup`."""
    from openpose_ros.inference.pipeline import PoseStream
    stream = PoseStream(estimator)
    for index in range(warmup):
        stream.process(image, index * 0.1)
    with _Interference() as interference:
        result = _timed_runs(stream, image, runs, warmup)
    result['other_processes_cpu_percent'] = interference.others_percent
    result['steal_cpu_percent'] = interference.steal_percent
    return result


def _timed_runs(stream, image, runs, warmup):
    import numpy as np
    per_stage = {stage: [] for stage in STAGES}
    totals, poses = [], []
    for index in range(warmup, warmup + runs):
        start = time.perf_counter()
        found = stream.process(image, index * 0.1).poses
        elapsed = (time.perf_counter() - start) * 1e3
        totals.append(elapsed)
        poses.append(len(found))
        for stage in STAGES:
            per_stage[stage].append(stream.timings.get(stage, 0.0))
    result = {f'{stage}_ms': round(statistics.median(values), 3) for stage, values in per_stage.items()}
    result['postprocessing_ms'] = round(statistics.median(
        [sum(per_stage[s][i] for s in POSTPROCESSING) for i in range(runs)]), 3)
    result['total_ms'] = round(statistics.median(totals), 3)
    result['total_p90_ms'] = round(float(np.percentile(totals, 90)), 3)
    result['fps'] = round(1e3 / result['total_ms'], 2)
    result['runs'] = runs
    result['poses_found_median'] = statistics.median(poses)
    return result


def worker_pipeline(spec):
    """The real pipeline on the reference photo with one backend."""
    import cv2
    threads = spec['threads']
    _limit_threads(threads)
    from openpose_ros.inference.estimator import PoseEstimator
    if spec['backend'] == 'torch':
        import torch
        torch.set_num_threads(threads)
        from openpose_ros.runtime.backends import TorchBackend
        from openpose_ros.learner import LightweightOpenPoseLearner
        learner = LightweightOpenPoseLearner(device='cpu', **spec['network']).load(spec['model'])
        backend = TorchBackend(learner.model, 'cpu')
    elif spec['backend'] in OPENVINO_MODELS:
        from openpose_ros.runtime.openvino import OpenVinoBackend
        backend = OpenVinoBackend(spec['model'], spec['backend'].split('-')[1], threads=threads)
    else:
        from openpose_ros.runtime.backends import OnnxBackend
        backend = OnnxBackend(spec['model'], 'cpu', threads=threads)
    estimator = PoseEstimator(backend, spec['stride'], BASE_HEIGHT)
    image = cv2.imread(spec['image'])
    result = _measure(estimator, image, spec['runs'], spec['warmup'])
    result['backend_name'] = backend.name
    result['peak_rss_mib'] = round(_peak_rss_mib(), 1)
    result['torch_imported'] = 'torch' in sys.modules
    result['onnxruntime_imported'] = 'onnxruntime' in sys.modules
    return result


class _OracleBackend:
    """Answers with fixed maps (rendered from annotations), checking they fit the network input it is given."""
    name = 'oracle'

    def __init__(self, heatmaps, pafs, stride):
        self.maps = heatmaps[None], pafs[None]
        self.stride = stride

    def run(self, batch):
        expected = (batch.shape[2] // self.stride, batch.shape[3] // self.stride)
        if self.maps[0].shape[2:] != expected:
            raise RuntimeError(f'oracle maps {self.maps[0].shape[2:]} do not fit the input {batch.shape}')
        return self.maps


def worker_people(spec):
    """Post-processing of real people: the estimator on a real photo, its network replaced by oracle maps."""
    import cv2
    _limit_threads(spec['threads'])
    from openpose_ros.formats.coco import load_coco_keypoints
    from openpose_ros.inference.estimator import PoseEstimator
    from openpose_ros.training.targets import render_oracle_maps
    annotations, path = spec['people']
    name = Path(path).name
    record = next(r for r in load_coco_keypoints(str(DATA / annotations)) if r.file_name == name)
    heatmaps, pafs, _, _ = render_oracle_maps(record, BASE_HEIGHT, spec['stride'])
    estimator = PoseEstimator(_OracleBackend(heatmaps, pafs, spec['stride']), spec['stride'], BASE_HEIGHT)
    image = cv2.imread(str(DATA / path))
    result = _measure(estimator, image, spec['runs'], spec['warmup'])
    result.update(image=name, annotated_people=record.num_people, map_size=list(heatmaps.shape[1:]),
                  torch_imported='torch' in sys.modules, peak_rss_mib=round(_peak_rss_mib(), 1))
    return result


def worker_floor(spec):
    """This CPU's fp32 matmul throughput (1024 x 1024, numpy's BLAS) at the given thread count."""
    import numpy as np
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((1024, 1024), dtype=np.float32) for _ in range(2))
    for _ in range(5):
        a @ b
    times = []
    for _ in range(30):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return {'matmul_gflops': round(2 * 1024 ** 3 / statistics.median(times) / 1e9, 1),
            'matmul_best_gflops': round(2 * 1024 ** 3 / min(times) / 1e9, 1)}


WORKERS = {'pipeline': worker_pipeline, 'people': worker_people, 'floor': worker_floor}

# What a user's process runs with ONNX Runtime or OpenVINO: the pipeline and nothing else (run with `python -c`,
# so that none of this benchmark's own imports count).
USER_PROCESS = '''
import json
import sys

import cv2

from openpose_ros.inference.estimator import PoseEstimator
from openpose_ros.inference.pipeline import PoseStream, StreamSettings

spec = json.loads(sys.argv[1])
cv2.setNumThreads(spec['threads'])
if spec['backend'].startswith('openvino-'):
    from openpose_ros.runtime.openvino import OpenVinoBackend
    backend = OpenVinoBackend(spec['model'], spec['backend'].split('-')[1], threads=spec['threads'])
else:
    from openpose_ros.runtime.backends import OnnxBackend
    backend = OnnxBackend(spec['model'], 'cpu', threads=spec['threads'])
stream = PoseStream(PoseEstimator(backend, spec['stride'], spec['base_height']))
image = cv2.imread(spec['image'])
for index in range(spec['frames']):
    stream.process(image, index * 0.1, StreamSettings(spec['upsample_ratio']))
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
print(json.dumps({'peak_rss_kib': int(status['VmHWM'].split()[0]),
                  'imported': sorted(name for name in ('torch', 'onnxruntime', 'openvino') if name in sys.modules)}))
'''
USER_FRAMES = 20


DISTURBED_PERCENT = 5.0


def run_measurement(spec, retries):
    """run_worker, again (up to `retries` times) while other processes took more than DISTURBED_PERCENT of
    the CPU during the measurement; returns the least disturbed result, with the number of attempts."""
    best = None
    for attempt in range(1 + retries):
        result = run_worker(spec)
        result['attempts'] = attempt + 1
        if best is None or result['other_processes_cpu_percent'] < best['other_processes_cpu_percent']:
            best = result
        if result['other_processes_cpu_percent'] <= DISTURBED_PERCENT:
            break
        log(f'  disturbed ({result["other_processes_cpu_percent"]}% CPU by others)'
            + (': measuring again' if attempt < retries else ''))
    return best


def run_worker(spec):
    """Runs one worker in a fresh process limited to spec['threads'] threads; returns its JSON result."""
    return _run_process(['--worker'], spec)


def _run_process(command, spec):
    """`python <command> <spec as JSON>` (command: this script's arguments, or ['-c', code]) in a fresh process
    limited to spec['threads'] threads; returns the JSON document of its last line of output."""
    threads = str(spec['threads'])
    env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    script = [] if command[0] == '-c' else [__file__]
    process = subprocess.run([sys.executable, *script, *command, json.dumps(spec)], env=env, text=True,
                             capture_output=True, timeout=900)
    if process.returncode != 0:
        raise RuntimeError(f'{spec.get("kind", "process")} failed:\n{process.stderr[-3000:]}')
    return json.loads(process.stdout.strip().splitlines()[-1])


def user_process_peak_rss(spec):
    """Peak RSS (MiB) of a user's process running the pipeline on `spec['backend']` (not torch), and the
    heavy modules it imported."""
    result = _run_process(['-c', USER_PROCESS], dict(spec, base_height=BASE_HEIGHT, upsample_ratio=UPSAMPLE_RATIO,
                                                     frames=USER_FRAMES))
    return round(result['peak_rss_kib'] / 1024, 1), result['imported']


# --- preparation (this process: torch, export, quantisation) ------------------------------------------------
def network_gflop(network, height, width):
    """Multiply-adds of the convolutions x 2 for one (1, 3, height, width) input, in GFLOP."""
    import torch
    total = []

    def count(module, _, output):
        kh, kw = module.kernel_size
        total.append(2 * output.numel() * module.in_channels // module.groups * kh * kw)

    hooks = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        network(torch.zeros(1, 3, height, width))
    for hook in hooks:
        hook.remove()
    return sum(total) / 1e9


def prepare_models(name, options, work, calibration_count):
    """Saved torch model, fp32 ONNX and int8 ONNX of one configuration (untrained weights, seed 0)."""
    import cv2
    import torch
    from openpose_ros.learner import LightweightOpenPoseLearner
    from openpose_ros.inference.preprocess import letterbox
    from openpose_ros.runtime.quantize import default_calibration_images
    torch.manual_seed(0)
    learner = LightweightOpenPoseLearner(device='cpu', temp_path=str(work / name / 'temp'), **options)
    learner.allow_random_weights()  # timing needs no trained weights
    folder = learner.save(work / name / 'model')
    image = cv2.imread(str(REFERENCE_IMAGE))
    box, _ = letterbox(image.shape[0], image.shape[1], BASE_HEIGHT, learner.stride)
    fp32 = shutil.copy(learner.optimize(), work / name / 'model.onnx')
    started = time.perf_counter()
    int8 = shutil.copy(learner.optimize(quantize=True,
                                        calibration_images=default_calibration_images(calibration_count)),
                       work / name / 'model.int8.onnx')
    paths = {'torch': str(folder), 'onnx': str(fp32), 'int8': str(int8)}
    return {
        'paths': dict(paths, **{backend: paths[model] for backend, model in OPENVINO_MODELS.items()}),
        'info': {'network': options, 'stride': learner.stride, 'network_input': [box.height, box.width],
                 'parameters': sum(p.numel() for p in learner.model.parameters()),
                 'gflop': round(network_gflop(learner.model.eval(), box.height, box.width), 3),
                 'quantisation_seconds': round(time.perf_counter() - started, 1)},
    }


# --- the run ------------------------------------------------------------------------------------------------
def machine():
    import cv2
    import numpy
    import onnxruntime
    import openvino
    info = {'cpu': platform.processor() or platform.machine(), 'cores_usable': len(os.sched_getaffinity(0)),
            'python': platform.python_version(), 'numpy': numpy.__version__, 'opencv': cv2.__version__,
            'onnxruntime': onnxruntime.__version__, 'openvino': openvino.__version__}
    try:
        names = [line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith('model name')]
        info['cpu'] = names[0]
        flags = open('/proc/cpuinfo').read()
        info['avx512_vnni'] = 'avx512_vnni' in flags
    except (OSError, IndexError):
        pass
    return info


def _process_label(backend):
    return ('torch process' if backend == 'torch' else f'openvino-only process ({backend})'
            if backend in OPENVINO_MODELS else f'onnxruntime-only process ({backend})')


def _mib_and_mb(values):
    return {'min_mib': min(values), 'max_mib': max(values),
            'min_mb': round(min(values) * 2 ** 20 / 1e6, 1), 'max_mb': round(max(values) * 2 ** 20 / 1e6, 1)}


def peak_rss_summary(doc, configs, backends):
    """Peak RSS of the measuring processes (MiB: min and max over configurations and thread counts) and of the
    user's processes (MiB and MB, overall and per configuration); raises if a process imported a runtime it
    does not run."""
    measuring, user = {}, {}
    for name in configs:
        for row in doc['configs'][name]['threads'].values():
            for backend in backends:
                measured, label = row[backend], _process_label(backend)
                measuring.setdefault(label, []).append(measured['peak_rss_mib'])
                if backend == 'torch':
                    continue
                user.setdefault(label, {}).setdefault(name, []).append(measured['user_process_peak_rss_mib'])
                imported = set(measured['user_process_imported']) | {
                    module for module in ('torch', 'onnxruntime') if measured[f'{module}_imported']}
                unexpected = imported & ({'torch', 'onnxruntime'} if backend in OPENVINO_MODELS else {'torch'})
                if unexpected:
                    raise RuntimeError(f'a {backend} process imported {", ".join(sorted(unexpected))}')
    measuring = {label: {'min': min(v), 'max': max(v)} for label, v in measuring.items()}
    measuring['onnxruntime_only_processes_imported_torch'] = False
    measuring['openvino_only_processes_imported_torch_or_onnxruntime'] = False
    user = {label: dict(_mib_and_mb([v for values in per_config.values() for v in values]),
                        per_configuration={name: _mib_and_mb(values) for name, values in per_config.items()})
            for label, per_config in user.items()}
    return measuring, user


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def targets(doc, config='mobilenet-1stage-stride8', threads='2 threads'):
    """The issues' targets for the accuracy-preserving configuration, from this run's figures (None: not run)."""
    row = doc['configs'].get(config, {}).get('threads', {}).get(threads)
    if not row or 'torch' not in row:
        return None
    result = {'configuration': config, 'threads': threads}
    if 'onnx' in row:
        result['fp32_pipeline_speedup_vs_torch_eager (target >= 1.5)'] = row['speedup_vs_torch_eager']['onnx']
        result['fp32_network_over_floor (target <= 1.1)'] = row['onnx_network_vs_floor']
        result['fp32_pipeline_over_floor (target <= 1.15)'] = ratio(row['onnx']['total_ms'], row['fp32_floor_ms'])
    if 'int8' in row:
        result['int8_pipeline_speedup_vs_torch_eager (target >= 3)'] = row['speedup_vs_torch_eager']['int8']
    if 'openvino-bf16' in row:
        result['openvino_bf16_pipeline_speedup_vs_torch_eager (target >= 2.5)'] = \
            row['speedup_vs_torch_eager']['openvino-bf16']
    if 'openvino-int8' in row:
        result['openvino_int8_pipeline_speedup_vs_torch_eager (target >= 4.5)'] = \
            row['speedup_vs_torch_eager']['openvino-int8']
    if 'openvino-fp32' in row and 'onnx' in row:
        result['openvino_fp32_network_ms_over_onnxruntime_fp32 (target <= 1)'] = ratio(
            row['openvino-fp32']['network_ms'], row['onnx']['network_ms'])
    most = doc['postprocessing'][f'stride {doc["configs"][config]["stride"]}'][threads]['11 people']
    result['pre_and_postprocessing_11_people_ms (target <= 3)'] = round(
        most['preprocess_ms'] + most['postprocessing_ms'], 2)
    for runtime in ('onnxruntime', 'openvino'):
        rss = [value for label, value in doc['user_process_peak_rss'].items() if label.startswith(f'{runtime}-only')]
        if rss:
            result[f'{runtime}_only_user_process_peak_rss_MB (target < 160)'] = {
                'this configuration': max(value['per_configuration'][config]['max_mb'] for value in rss),
                'all configurations': max(value['max_mb'] for value in rss)}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='one configuration, 10 runs: a smoke run (~1 min)')
    parser.add_argument('--runs', type=int, help='timed runs per measurement (default 40; --quick 10)')
    parser.add_argument('--warmup', type=int, help='untimed runs first (default 5; --quick 2)')
    parser.add_argument('--configs', help='comma-separated subset of: ' + ', '.join(CONFIGS))
    parser.add_argument('--threads', default='1,2', help='thread counts (default 1,2)')
    parser.add_argument('--backends', default=','.join(BACKENDS), help='subset of ' + ','.join(BACKENDS))
    parser.add_argument('--calibration-images', type=int, help='int8 calibration images (default 32; --quick 8)')
    parser.add_argument('--retries', type=int, default=2,
                        help=f'measure again when other processes took > {DISTURBED_PERCENT:g}%% of the CPU meanwhile '
                             '(default 2; the least disturbed attempt is kept)')
    parser.add_argument('--output', help='also write the JSON document to this file')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec['kind']](spec)))
        return 0

    runs = args.runs or (10 if args.quick else 40)
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    configs = ([c.strip() for c in args.configs.split(',')] if args.configs
               else list(CONFIGS)[:1] if args.quick else list(CONFIGS))
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f'unknown configuration(s) {unknown}; known: {", ".join(CONFIGS)}')
    backends = [b.strip() for b in args.backends.split(',')]
    if not set(backends) <= set(BACKENDS):
        parser.error(f'backends must be among {BACKENDS}')
    threads = [int(t) for t in args.threads.split(',')]
    calibration = args.calibration_images or (8 if args.quick else 32)
    if not REFERENCE_IMAGE.is_file():
        parser.error(f'the reference image {REFERENCE_IMAGE} is missing (../shared/data)')

    started = time.perf_counter()
    load_before = os.getloadavg()
    doc = {
        'machine': machine(),
        'settings': {'image': '../shared/data/' + str(REFERENCE_IMAGE.relative_to(DATA)), 'base_height': BASE_HEIGHT,
                     'upsample_ratio': UPSAMPLE_RATIO, 'runs': runs, 'warmup': warmup, 'statistic': 'median',
                     'weights': 'untrained (seed 0): network speed does not depend on weight values; '
                                'post-processing of real people is measured on oracle maps',
                     'int8': f'static QDQ, per-channel int8 weights, uint8 activations, calibrated on '
                             f'{calibration} real images at base height {BASE_HEIGHT}',
                     'process_per_measurement': True},
        'configs': {}, 'postprocessing': {}, 'pipeline_with_people': {}, 'floor': {},
    }
    with tempfile.TemporaryDirectory(prefix='openpose-bench-') as work:
        work = Path(work)
        for count in threads:
            log(f'fp32 matmul floor, {count} thread(s)')
            doc['floor'][f'{count} threads'] = run_worker({'kind': 'floor', 'threads': count})
        prepared = {}
        for name in configs:
            log(f'{name}: export and int8 quantisation')
            prepared[name] = prepare_models(name, CONFIGS[name], work, calibration)
        for name in configs:
            info, paths = prepared[name]['info'], prepared[name]['paths']
            entry = dict(info, threads={})
            for count in threads:
                row = {}
                for backend in backends:
                    log(f'{name}: {backend}, {count} thread(s), {runs} runs')
                    row[backend] = run_measurement({
                        'kind': 'pipeline', 'backend': backend, 'model': paths[backend], 'threads': count,
                        'network': info['network'], 'stride': info['stride'], 'image': str(REFERENCE_IMAGE),
                        'runs': runs, 'warmup': warmup}, args.retries)
                    if backend != 'torch':
                        row[backend]['user_process_peak_rss_mib'], row[backend]['user_process_imported'] = \
                            user_process_peak_rss({'backend': backend, 'model': paths[backend], 'threads': count,
                                                   'stride': info['stride'], 'image': str(REFERENCE_IMAGE)})
                if 'torch' in row:
                    row['speedup_vs_torch_eager'] = {b: ratio(row['torch']['total_ms'], row[b]['total_ms'])
                                                     for b in backends if b != 'torch'}
                    row['network_speedup_vs_torch_eager'] = {
                        b: ratio(row['torch']['network_ms'], row[b]['network_ms']) for b in backends if b != 'torch'}
                gflops = doc['floor'][f'{count} threads']['matmul_gflops']
                floor_ms = info['gflop'] / gflops * 1e3
                row['fp32_floor_ms'] = round(floor_ms, 2)
                if 'onnx' in row:
                    row['onnx_network_vs_floor'] = ratio(row['onnx']['network_ms'], floor_ms)
                entry['threads'][f'{count} threads'] = row
            doc['configs'][name] = entry
        for stride in sorted({prepared[name]['info']['stride'] for name in configs}):
            block = {}
            for count in threads:
                cases = {}
                for label, people in PEOPLE.items():
                    log(f'post-processing, stride {stride}, {label}, {count} thread(s)')
                    cases[label] = run_measurement({'kind': 'people', 'people': people, 'stride': stride,
                                                    'threads': count, 'runs': runs, 'warmup': warmup},
                                                   args.retries)
                block[f'{count} threads'] = cases
            doc['postprocessing'][f'stride {stride}'] = block
    # The pipeline on real people: preprocessing and network of the reference run + post-processing of people.
    for name in configs:
        entry, stride = doc['configs'][name], doc['configs'][name]['stride']
        summary = {}
        for count in threads:
            key = f'{count} threads'
            people = doc['postprocessing'][f'stride {stride}'][key]
            row = {}
            for backend in backends:
                measured = entry['threads'][key][backend]
                row[backend] = {label: round(measured['preprocess_ms'] + measured['network_ms']
                                             + people[label]['postprocessing_ms'], 2) for label in PEOPLE}
            if 'torch' in row:
                for backend in backends:
                    if backend != 'torch':
                        row[f'{backend}_speedup_vs_torch_eager'] = {
                            label: ratio(row['torch'][label], row[backend][label]) for label in PEOPLE}
            if 'onnx' in row:
                row['onnx_overhead_over_network_ms'] = {
                    label: round(row['onnx'][label] - entry['threads'][key]['onnx']['network_ms'], 2)
                    for label in PEOPLE}
            summary[key] = row
        doc['pipeline_with_people'][name] = summary
    doc['peak_rss_mib'], doc['user_process_peak_rss'] = peak_rss_summary(doc, configs, backends)
    measured = [r for c in doc['configs'].values() for row in c['threads'].values() for r in row.values()
                if isinstance(r, dict) and 'other_processes_cpu_percent' in r]
    measured += [r for block in doc['postprocessing'].values() for cases in block.values() for r in cases.values()]
    doc['machine']['other_processes_cpu_percent_max'] = max(r['other_processes_cpu_percent'] for r in measured)
    doc['machine']['disturbed_measurements'] = sum(r['other_processes_cpu_percent'] > DISTURBED_PERCENT
                                                   for r in measured)
    doc['targets'] = targets(doc)
    load_after = os.getloadavg()
    doc['machine'].update(load_average_before=[round(v, 2) for v in load_before],
                          load_average_after=[round(v, 2) for v in load_after],
                          quiet_before=load_before[0] < 0.5,
                          note='the load after includes this benchmark\'s own processes')
    doc['seconds'] = round(time.perf_counter() - started, 1)
    text = json.dumps(doc, indent=1)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + '\n')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
