"""download(): every mode's files are checked before they are kept, the whole download is bounded in time, and a
local mirror only hands over regular files. Mirrors are folders in tmp_path and a server on 127.0.0.1."""
import http.server
import os
import subprocess
import threading
import time

import pytest
import torch

from conftest import PHOTO
from openpose_ros.runtime.download import MODES, DownloadError, download
from openpose_ros.runtime.download import git_blob_sha1


JUNK = b'hello world'  # 11 bytes: what a broken mirror or proxy may serve


def _good_file(path, content):
    """A small file that loads as `content` ('checkpoint', 'json' or 'image')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if content == 'checkpoint':
        torch.save({'state_dict': {'weight': torch.arange(4.0)}}, path)
    elif content == 'json':
        path.write_text('{"images": [], "annotations": []}')
    else:
        path.write_bytes(PHOTO.read_bytes())


def _mirror(folder, mode):
    """A mirror that holds good files for `mode`; returns its file:// address."""
    for remote in MODES[mode]:
        _good_file(folder / remote.address, remote.content)
    return folder.as_uri()


CHECKED = [(mode, index) for mode in ('opendr_pretrained', 'weights', 'test_data')
           for index in range(len(MODES[mode]))]


@pytest.mark.parametrize('mode, index', CHECKED)
def test_a_file_that_does_not_load_is_neither_kept_nor_returned(tmp_path, mode, index):
    remote = MODES[mode][index]
    url = _mirror(tmp_path / 'mirror', mode)
    (tmp_path / 'mirror' / remote.address).write_bytes(JUNK)
    with pytest.raises(DownloadError, match='did not verify'):
        download(tmp_path / 'cache', mode, url=url)
    assert not (tmp_path / 'cache' / remote.target).exists()
    _good_file(tmp_path / 'mirror' / remote.address, remote.content)  # the mirror is fixed
    fetched = download(tmp_path / 'cache', mode, url=url)
    assert fetched.is_file() and (tmp_path / 'cache' / remote.target).read_bytes() == (
        tmp_path / 'mirror' / remote.address).read_bytes()


@pytest.mark.parametrize('mode, index', CHECKED)
def test_a_cached_file_that_does_not_load_is_fetched_again(tmp_path, mode, index):
    remote = MODES[mode][index]
    url = _mirror(tmp_path / 'mirror', mode)
    cached = tmp_path / 'cache' / remote.target
    cached.parent.mkdir(parents=True)
    cached.write_bytes(JUNK)  # left by an earlier, unchecked download
    download(tmp_path / 'cache', mode, url=url)
    assert cached.read_bytes() == (tmp_path / 'mirror' / remote.address).read_bytes()


def _finishes_within(seconds, function, release):
    """function()'s exception (None if it returned), asserting it is done within `seconds`; `release` unblocks a
    thread left hanging, so that a failing test does not hang the suite."""
    outcome = {}

    def target():
        try:
            function()
        except Exception as error:  # noqa: BLE001 -- the test inspects it
            outcome['error'] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        release()
        thread.join(5)
        pytest.fail(f'still running after {seconds} s')
    return outcome.get('error')


def _release_fifo(path):
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # a writer that leaves: the reader sees the end
    except OSError:
        pass


@pytest.mark.parametrize('kind', ['fifo', 'device', 'folder'])
def test_a_local_mirror_hands_over_only_regular_files(tmp_path, kind):
    remote = MODES['weights'][0]
    path = tmp_path / 'mirror' / remote.address
    path.parent.mkdir()
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'device':
        path.symlink_to('/dev/zero')
    else:
        path.mkdir()
    error = _finishes_within(10, lambda: download(tmp_path / 'cache', 'weights', url=(tmp_path / 'mirror').as_uri(),
                                                  deadline=30), lambda: _release_fifo(path))
    assert isinstance(error, DownloadError) and 'not a regular file' in str(error)
    assert not (tmp_path / 'cache' / remote.target).exists()


class _SlowServer(http.server.ThreadingHTTPServer):
    """Answers every GET with a header that promises 1000 bytes, then sends one byte every `interval` seconds
    (never, when interval is None)."""
    daemon_threads = True

    def __init__(self, interval):
        self.interval, self.stopping = interval, threading.Event()
        super().__init__(('127.0.0.1', 0), _SlowHandler)


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 -- the name http.server calls
        self.send_response(200)
        self.send_header('Content-Length', '1000')
        self.end_headers()
        self.wfile.flush()
        try:
            while not self.server.stopping.wait(self.server.interval or 60):
                self.wfile.write(b'x')
                self.wfile.flush()
        except OSError:  # the client gave up
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(params=[0.5, None], ids=['trickling', 'silent'])
def slow_server(request):
    server = _SlowServer(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.stopping.set()
    server.shutdown()
    server.server_close()


def test_a_slow_server_is_given_up_on_at_the_deadline(tmp_path, slow_server):
    started = time.monotonic()
    error = _finishes_within(20, lambda: download(tmp_path / 'cache', 'weights', url=slow_server, deadline=2),
                             lambda: None)
    elapsed = time.monotonic() - started
    assert isinstance(error, DownloadError), error
    assert 'deadline' in str(error) or 'timed out' in str(error)
    assert 1.5 < elapsed < 10, elapsed
    assert not (tmp_path / 'cache' / MODES['weights'][0].target).exists()


def test_the_deadline_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match='deadline'):
        download(tmp_path, 'weights', url=(tmp_path / 'mirror').as_uri(), deadline=0)


def test_download_offline_says_where_from_and_what_to_do(tmp_path):
    with pytest.raises(DownloadError) as error:
        download(tmp_path, 'pretrained', url='http://127.0.0.1:9/models')
    message = str(error.value)
    assert 'http://127.0.0.1:9/models/checkpoint_iter_370000.pth' in message
    assert 'OPENPOSE_ROS_MIRROR' in message and 'learner.load' in message
    assert not any(tmp_path.iterdir())


def test_download_from_a_mirror_verifies_the_published_hash(tmp_path):
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    (mirror / 'checkpoint_iter_370000.pth').write_bytes(b'not the published model')
    with pytest.raises(DownloadError, match='did not verify'):
        download(tmp_path / 'models', 'pretrained', url=mirror.as_uri())
    assert not (tmp_path / 'models' / 'checkpoint_iter_370000.pth').exists()
    torch.save({'state_dict': {'weight': torch.ones(3)}}, mirror / 'mobilenet_sgd_68.848.pth.tar')
    fetched = download(tmp_path / 'models', 'weights', url=mirror.as_uri())  # no published hash: it must load
    assert fetched.read_bytes() == (mirror / 'mobilenet_sgd_68.848.pth.tar').read_bytes()


def test_git_blob_sha1_matches_git(tmp_path):
    sample = tmp_path / 'sample.bin'
    sample.write_bytes(bytes(range(256)) * 100)
    expected = subprocess.run(['git', 'hash-object', str(sample)], capture_output=True, text=True).stdout.strip()
    assert git_blob_sha1(sample) == expected
