"""Soak test of pose_estimation_node (not CI): N minutes of 30 Hz camera frames; memory and latency over time.

    source scripts/ros_env.sh && python benchmarks/soak.py --weights test/models/tiny_coco [--minutes 10]

Runs three processes over DDS (localhost only, a domain of its own): the node (config/pose_estimation.yaml),
the video publisher (../shared/data/video/vtest.avi looped, 768x576 bgr8 at 30 Hz, stamped at publication) and a
probe (openpose_ros.ros.probe) that reports, per interval, the age of the published poses and the node's
diagnostics. This script samples the node's resident memory (VmRSS) and CPU time from /proc, and prints one JSON
object: every sample, and the start (first minute after warm-up), end (last minute) and least-squares slope of
resident memory and pose age. A leak shows as a positive memory slope; a growing queue as a positive age slope.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / 'shared' / 'data' / 'video' / 'vtest.avi'
PAGE = os.sysconf('SC_PAGE_SIZE')
TICKS = os.sysconf('SC_CLK_TCK')


def rss_mib(pid):
    with open(f'/proc/{pid}/statm') as statm:
        return int(statm.read().split()[1]) * PAGE / 2 ** 20


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def slope_per_minute(times, values):
    times, values = np.asarray(times, float), np.asarray(values, float)
    keep = np.isfinite(values)
    if keep.sum() < 2:
        return None
    return float(np.polyfit(times[keep] / 60.0, values[keep], 1)[0])


def window_mean(times, values, start, end):
    chosen = [v for t, v in zip(times, values) if start <= t < end and v is not None]
    return round(float(np.mean(chosen)), 2) if chosen else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', default=str(ROOT / 'test' / 'models' / 'tiny_coco'))
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--video', default=str(VIDEO))
    parser.add_argument('--interval', type=float, default=10.0, help='seconds between samples (default 10)')
    parser.add_argument('--warmup', type=float, default=30.0, help='seconds left out of the start figures')
    parser.add_argument('--param', '-p', action='append', default=[], metavar='NAME:=VALUE',
                        help='more node parameters (repeatable)')
    args = parser.parse_args(argv)

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', PYTHONUNBUFFERED='1',
               ROS_DOMAIN_ID=os.environ.get('SOAK_DOMAIN_ID', str(random.SystemRandom().randint(40, 99))))
    namespace = '/soak'
    node_command = [sys.executable, '-m', 'openpose_ros.ros.node', '--ros-args', '--params-file',
                    str(ROOT / 'config' / 'pose_estimation.yaml'), '-r', f'__ns:={namespace}',
                    '-p', f'weights:={args.weights}', '-r', f'image:={namespace}/camera/image_raw']
    for parameter in args.param:
        node_command += ['-p', parameter]
    node = subprocess.Popen(node_command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    node_log = []
    threading.Thread(target=lambda: node_log.extend(line.rstrip() for line in node.stdout), daemon=True).start()
    deadline = time.monotonic() + 180
    while not any(']: active: ' in line for line in node_log):
        if node.poll() is not None or time.monotonic() > deadline:
            print('\n'.join(node_log), file=sys.stderr)
            sys.exit('soak: the node did not start')
        time.sleep(0.2)

    seconds = args.minutes * 60
    frames = int(seconds * args.rate)
    probe = subprocess.Popen([sys.executable, '-m', 'openpose_ros.ros.probe', '--topic', f'{namespace}/poses',
                              '--interval', str(args.interval), '--duration', str(seconds + 5),
                              '--node', f'{namespace.strip("/")}/pose_estimation: pose estimation'],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    probe_lines = []

    def read_probe():
        for line in probe.stdout:
            try:
                probe_lines.append(json.loads(line))
                print(line.rstrip(), file=sys.stderr, flush=True)
            except ValueError:
                pass
    threading.Thread(target=read_probe, daemon=True).start()
    publisher = subprocess.Popen([sys.executable, '-m', 'openpose_ros.ros.video_publisher', args.video, '--topic',
                                  f'{namespace}/camera/image_raw', '--rate', str(args.rate), '--count', str(frames),
                                  '--no-stamps', '--quiet'], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    published = []  # read while it runs: a full pipe would block it
    threading.Thread(target=lambda: published.extend(publisher.stdout), daemon=True).start()
    started = time.monotonic()
    samples, last_cpu, last_t = [], cpu_seconds(node.pid), started
    try:
        while publisher.poll() is None:
            time.sleep(args.interval)
            now = time.monotonic()
            cpu = cpu_seconds(node.pid)
            samples.append({'t_s': round(now - started, 1), 'rss_mib': round(rss_mib(node.pid), 1),
                            'cpu_percent': round(100 * (cpu - last_cpu) / (now - last_t), 1)})
            last_cpu, last_t = cpu, now
            print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
    finally:
        publisher.wait()
        stream_s = time.monotonic() - started
        time.sleep(2 * args.interval)
        probe.send_signal(signal.SIGINT)
        probe.wait(30)
        node.send_signal(signal.SIGINT)
        node_exit = node.wait(30)

    # Join the probe's lines (age, rate, diagnostics) to the memory samples by time.
    ages = []
    for sample in samples:
        line = min(probe_lines, key=lambda p: abs(p['t_s'] - sample['t_s']), default=None)
        sample['age_ms_p50'] = line['age_ms']['p50'] if line and line['age_ms'] else None
        sample['age_ms_p95'] = line['age_ms']['p95'] if line and line['age_ms'] else None
        sample['poses_rate_hz'] = line['rate_hz'] if line else None
        ages.append(sample['age_ms_p50'])
    samples = [s for s in samples if s['t_s'] <= stream_s]  # while frames flowed
    times = [s['t_s'] for s in samples]
    rss = [s['rss_mib'] for s in samples]
    total = times[-1] if times else 0
    after = [(t, r, a) for t, r, a in zip(times, rss, ages) if t >= args.warmup]
    last_diagnostics = next((p['diagnostics'] for p in reversed(probe_lines) if p['diagnostics']), {})
    result = {
        'minutes': args.minutes, 'rate_hz': args.rate, 'weights': args.weights, 'video': args.video,
        'publisher': json.loads(published[-1]) if published else None,
        'node_exit_status': node_exit,
        'rss_mib': {'start': window_mean(times, rss, args.warmup, args.warmup + 60),
                    'end': window_mean(times, rss, total - 60, total + 1), 'max': max(rss) if rss else None,
                    'slope_per_min_after_warmup': slope_per_minute([a[0] for a in after], [a[1] for a in after])},
        'age_ms_p50': {'start': window_mean(times, ages, args.warmup, args.warmup + 60),
                       'end': window_mean(times, ages, total - 60, total + 1),
                       'slope_per_min_after_warmup': slope_per_minute(
                           [a[0] for a in after], [np.nan if a[2] is None else a[2] for a in after])},
        'node_final_diagnostics': {key: last_diagnostics.get(key) for key in (
            'frames_received', 'frames_processed', 'frames_dropped', 'frames_rejected', 'frames_failed',
            'processing_rate_hz', 'latency_ms_mean', 'inference_ms_mean', 'backend', 'message')},
        'samples': samples,
    }
    print(json.dumps(result, indent=1))
    return 0 if node_exit == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
