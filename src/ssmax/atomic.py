"""Writing a file so that no reader and no other writer ever sees half of it.

Every file the package writes (results JSON, checkpoints, weights, the benchmark table, executed
notebooks) goes through `write_atomic`: the data goes to a uniquely named temporary file in the
target's folder, is flushed to disk, and replaces the target with one `os.replace`. An advisory
lock on ``<target>.lock`` is held around the write and the replace, so two processes writing the
same path take turns instead of racing (the last one wins, whole). A reader never takes the
lock: it sees the old file or the new one. The temporary file is removed if anything fails;
one left by a writer that was killed (SIGKILL, power loss) carries that writer's process id in
its name and is removed by the next write of the same path (`remove_stale_temps`).

No torch here: the notebook tool imports this without the heavy dependencies.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Union

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: os.replace alone still keeps files whole
    fcntl = None  # type: ignore[assignment]

PathLike = Union[str, os.PathLike]


def _default_mode() -> int:
    """What a plain open() would give a new file (mkstemp makes 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_NEW_FILE_MODE = _default_mode()


def lock_path(path: PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def file_lock(path: PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``<path>.lock`` (the lock file itself is left in place:
    deleting it would let two writers lock two different files)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(lock_path(path), os.O_CREAT | os.O_RDWR, _NEW_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def temp_path_beside(path: PathLike, suffix: str = ".tmp") -> Path:
    """A new, empty, uniquely named hidden file in ``path``'s folder (same filesystem, so
    `os.replace` onto ``path`` is atomic): ``.<name>.<pid>-<random><suffix>``; the process id
    lets a later writer tell a temporary file of a killed writer from one still being written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=suffix)
    os.close(fd)
    return Path(name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: PathLike, suffix: str = ".tmp") -> list[Path]:
    """Remove the temporary files beside ``path`` that a killed writer left (its process is
    gone; a name without a process id is older than this scheme and removed too); returns them.
    A temporary file of a live process is left alone."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*{suffix}"):
        stem = tmp.name[len(path.name) + 2:-len(suffix)]
        if "." in stem:  # the temporary file of another target whose name starts like this one
            continue
        pid = stem.split("-", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _pid_alive(int(pid))):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters escaped (a file name used as a glob prefix)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_atomically(tmp: PathLike, path: PathLike) -> None:
    """Move a finished temporary file over ``path``: flushed first, under ``path``'s lock."""
    tmp, path = Path(tmp), Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else _NEW_FILE_MODE
    os.chmod(tmp, mode)
    _fsync_file(tmp)
    with file_lock(path):
        os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_atomic(path: PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then replace ``path`` with
    it; the lock on ``path`` is held throughout, so concurrent writers serialize."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        remove_stale_temps(path)
        tmp = temp_path_beside(path)
        try:
            write(tmp)
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else _NEW_FILE_MODE)
            _fsync_file(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    _fsync_dir(path.parent)


def write_text_atomic(path: PathLike, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_of_file(path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB chunks (the corpus check and the weights
    digests of results both use it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
