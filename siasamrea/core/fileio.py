"""Atomic writes: a result file or directory appears complete under its final name, or not at all.

Every artefact a run or a stage writes (checkpoints, frame caches, videos, CSV and JSON results) goes through
:func:`atomic_path`: the content is written to a hidden temporary sibling, flushed to disk, then renamed onto
the final name with :func:`os.replace` (atomic on POSIX within one file system). A process killed while
writing leaves at most a temporary, never a truncated result that a later stage would read as valid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: A temporary of :func:`atomic_path`: ``.<name>.tmp-<pid>[-<random>][<suffix>]``.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)(-[0-9a-f]{8}(\.\w+)?)?$")


def temp_sibling(path: Path) -> Path:
    """A hidden, unique name beside ``path`` that names the writing process and keeps the suffix.

    Same directory, because :func:`os.replace` must not cross file systems; the writer's pid, so that
    :func:`remove_stale_temporaries` can tell a dead writer's leftovers from a live one's; the real suffix
    last, because FFmpeg picks its muxer by it; not ``mkstemp``, which creates files 0600 and the mode would
    stick.
    """
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(directory: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporaries in ``directory`` left by processes that no longer exist.

    A kill while writing leaves its temporary behind; nothing else would ever remove it. ``name`` restricts
    to one target name (a regular expression; default: any). Returns what was removed.
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    removed = []
    for p in sorted(root.iterdir()):
        m = _TEMPORARY.match(p.name)
        if m is None or (name is not None and re.fullmatch(name, m["name"]) is None) or _alive(int(m["pid"])):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success move it onto ``path``.

    The temporary may be written as a file or created as a directory (a checkpoint, a frame cache): a
    directory replaces an existing ``path`` whole. On an exception the temporary is removed and ``path`` is
    left as it was. ``fsync``: flush the file (or every file of the directory) and the parent directory, so
    the rename cannot reach the disk before the data.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
        if tmp.is_dir():
            if fsync:
                for f in tmp.rglob("*"):
                    if f.is_file():
                        _fsync(f)
            if path.exists():
                shutil.rmtree(path)
        elif fsync:
            _fsync(tmp)
        os.replace(tmp, path)
        if fsync:
            _fsync(path.parent)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(
    path: str | os.PathLike, text: str, *, newline: str | None = "\n", fsync: bool = False
) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; ``newline`` as :func:`open`'s."""
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1, fsync: bool = False) -> None:
    """``obj`` as JSON to ``path`` atomically (values JSON cannot hold are written as ``str``)."""
    write_text(path, json.dumps(obj, indent=indent, default=str), fsync=fsync)
