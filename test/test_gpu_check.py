"""benchmarks/gpu_check.py where there is no CUDA device (CUDA hidden, so this runs on GPU machines too): it says
so, writes {"cuda": false, ...} and exits 0 at once; bad settings exit 2 before anything runs."""
import json
import os
import subprocess
import sys
import time

from conftest import ROOT

SCRIPT = ROOT / 'benchmarks' / 'gpu_check.py'
NO_CUDA = {**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'PYTHONPATH': str(ROOT)}


def gpu_check(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=NO_CUDA, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_without_cuda_it_says_so_writes_the_reason_and_exits_0(tmp_path):
    output = tmp_path / 'out' / 'gpu_check.json'
    started = time.monotonic()
    done = gpu_check('--output', str(output), cwd=tmp_path)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert 'no CUDA device is available' in done.stderr and 'Nothing was measured' in done.stderr
    doc = json.loads(output.read_text())
    assert doc['cuda'] is False and doc['measured'] is False
    assert 'CPU-only build' in doc['reason'] or "CUDA_VISIBLE_DEVICES=''" in doc['reason']
    assert json.loads(done.stdout) == doc
    assert sorted(p.name for p in output.parent.iterdir()) == ['gpu_check.json']  # no temporary left beside it
    assert seconds < 60, 'it must not measure or test anything without CUDA'  # generous: catches a hang only


def test_bad_settings_exit_2_with_the_reason(tmp_path):
    for args, message in ((['--runs', '0'], '--runs must be in [1, 10000]'),
                          (['--batch-sizes', '4,x'], '--batch-sizes must be comma-separated integers'),
                          (['--batch-sizes', '4,512'], '--batch-sizes must each be in [1, 256]')):
        done = gpu_check(*args, '--output', str(tmp_path / 'x.json'), cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
    assert not (tmp_path / 'x.json').exists()
