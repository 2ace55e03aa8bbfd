"""Writing files so that nothing is lost: every file is-rl writes goes to a unique temporary name in its own folder
and is renamed into place, so a crash, a full disk or a concurrent writer leaves either the previous file whole or
the new one whole, never half of one (``os.replace`` is atomic within a file system)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "sb3_path"]


def sb3_path(path: str | os.PathLike[str], suffix: str) -> Path:
    """The file SB3 writes for ``path``: ``path`` itself if it has a suffix, else ``path.<suffix>``
    (``stable_baselines3.common.save_util.open_path`` in write mode)."""
    path = Path(path)
    return path if path.suffix else Path(f"{path}.{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A unique temporary path beside ``path`` (folders made) to write the file to; on leaving the block without an
    exception the file is flushed to disk and renamed to ``path``, otherwise removed.

    :param path: the file to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a unique temporary file renamed into place; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a unique temporary file renamed into place; returns the path."""
    return atomic_write_bytes(path, text.encode())
