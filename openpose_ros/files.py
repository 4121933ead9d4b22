"""Writing files so that no reader ever sees half of one: a temporary beside the target, then one rename."""
import hashlib
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

TEMPORARY_SUFFIX = '.tmp'
# A temporary whose writer is still running is never touched; one whose writer vanished (killed) is removed by
# the next write to the same target, or after this long whatever its PID says (the PID may have been reused).
STALE_TEMPORARY_SECONDS = 24 * 3600


def named_target(path):
    """`path` as a Path, refusing one without a final name ('', '.', '/', 'x/..'): writing there would replace
    a folder the caller did not name (the current one, the root)."""
    path = Path(path)
    if path.name in ('', '.', '..'):
        raise ValueError(f'{str(path) or "an empty path"!r} names no file or folder to write: give a path that '
                         f'ends in a name, e.g. "models/my_model"')
    return path


def _temporary_prefix(path):
    return f'.{path.name}.'


def _stale_temporaries(path):
    """Temporaries of earlier writes to `path` (named .<name>.<pid>.<random>.tmp by atomic_path) whose writing
    process is gone, or which are older than STALE_TEMPORARY_SECONDS."""
    pattern = re.compile(re.escape(_temporary_prefix(path)) + r'(\d+)\.[^.]+' + re.escape(TEMPORARY_SUFFIX))
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and (
                not _process_alive(int(match.group(1))) or _age_seconds(entry) > STALE_TEMPORARY_SECONDS):
            yield entry


def _age_seconds(path):
    try:
        return time.time() - path.lstat().st_mtime
    except FileNotFoundError:  # its writer finished meanwhile
        return 0.0


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or a number we cannot judge: leave its files alone
    return True


@contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; on success it replaces `path` in one rename, on error it vanishes.

    Works for files and folders; a folder being replaced is renamed aside first and removed only after the new
    one is in place, so a failure never leaves neither. What is written there gets ordinary permissions.
    The temporary lives in a folder of its own, .<name>.<pid>.<random>.tmp, the only thing removed afterwards;
    such folders left by a writer that was killed are removed by the next write to the same `path`. A path
    without a final name is refused (ValueError).
    """
    path = named_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_temporaries(path):
        shutil.rmtree(stale, ignore_errors=True)
    workspace = Path(tempfile.mkdtemp(prefix=f'{_temporary_prefix(path)}{os.getpid()}.', suffix=TEMPORARY_SUFFIX,
                                      dir=path.parent))
    temporary = workspace / path.name
    try:
        yield temporary
        if temporary.is_dir() and path.is_dir():
            os.replace(path, workspace / (path.name + '.previous'))
            os.replace(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def check_writable_folder(folder) -> Path:
    """Creates `folder` (and its parents) and writes and removes a temporary file there: OSError when it cannot
    be written (permissions, a read-only filesystem; os.access cannot tell, e.g. for root), before any work."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix='.write_check.'):
        pass
    return folder


def refuse_replacing(paths, hint='pass --overwrite to replace it') -> None:
    """FileExistsError naming the first of `paths` that exists (a file or a link the caller would replace)."""
    existing = next((Path(path) for path in paths if os.path.lexists(path)), None)
    if existing is not None:
        raise FileExistsError(f'{existing} exists already; {hint}, or choose another output folder')


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically, flushed to disk before the rename; returns the path."""
    with atomic_path(path) as temporary, open(temporary, 'w', encoding='utf-8') as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    return Path(path)


def file_sha256(path):
    """The SHA-256 of a file's bytes, as 64 hex digits (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
