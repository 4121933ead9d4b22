"""Writing files so that no reader ever sees half of one: a temporary beside the target, then one rename."""
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; on success it replaces `path` in one rename, on error it vanishes.

    Works for files and folders; a folder being replaced is renamed aside first and removed only after the new
    one is in place, so a failure never leaves neither. What is written there gets ordinary permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', dir=path.parent)) / path.name
    try:
        yield temporary
        if temporary.is_dir() and path.is_dir():
            aside = temporary.parent / (path.name + '.previous')
            os.replace(path, aside)
            os.replace(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        shutil.rmtree(temporary.parent, ignore_errors=True)


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically, flushed to disk before the rename; returns the path."""
    with atomic_path(path) as temporary, open(temporary, 'w', encoding='utf-8') as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    return Path(path)
