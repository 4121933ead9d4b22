"""Real filesystems that fail for the tests: mounts (as root), a read-only folder, a file size limit."""
import contextlib
import os
import resource
import signal
import subprocess

import pytest


def mounted(command, folder, reason):
    """Mounts a filesystem on `folder` (root only); skips with `reason` where that is not possible."""
    if os.geteuid() != 0:
        pytest.skip(f'mounting needs root: {reason}')
    done = subprocess.run([*command, str(folder)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f'cannot mount here ({done.stderr.strip()}): {reason}')


@contextlib.contextmanager
def read_only_folder(folder):
    """A folder that cannot be written into: a read-only bind mount as root (who ignores permissions), else
    mode 0o555."""
    folder.mkdir()
    (folder / 'before.txt').write_text('here before\n')
    if os.geteuid() == 0:
        mounted(['mount', '--bind', '-o', 'ro', str(folder)], folder, 'root writes into any folder')
        try:
            yield folder
        finally:
            subprocess.run(['umount', '-l', str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)


def limit_file_size(limit):
    """preexec_fn: files of the child may not grow beyond `limit` bytes (writes then fail with EFBIG, as on a
    full disk or quota, rather than killing it with SIGXFSZ)."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply
