"""One writer per directory: an OS file lock (``flock``) held for the writer's whole life.

The kernel drops the lock when the process dies (``kill -9``, power cut), so a stale lock never
needs cleaning. The holder's pid is written into the lock file so that a second writer's error
names it. Readers (``status``) never take the lock.
"""
import errno
import fcntl
import os
from pathlib import Path
from typing import Optional

from miro_edge.errors import MiroEdgeError

LOCK_NAME = ".writer.lock"


class WorkspaceLockedError(MiroEdgeError):
    """Another process is the directory's writer."""


class WriterLock:
    """``with WriterLock(dir, what="update"):`` or ``acquire()``/``release()``; non-blocking."""

    def __init__(self, directory: Path, what: str = "writer") -> None:
        self.path = Path(directory) / LOCK_NAME
        self.what = what
        self._fd = -1

    def holder(self) -> Optional[str]:
        """What the lock file says about its holder (pid and command), or None."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return text or None

    def acquire(self) -> "WriterLock":
        if self._fd >= 0:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise MiroEdgeError(f"cannot open the lock file {self.path} ({exc.strerror}); is the directory writable?") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise WorkspaceLockedError("{} is in use by another writer ({}); stop it first, or wait for it to "
                                           "finish (readers such as `miro-edge status` need no lock)".format(
                                               self.path.parent, self.holder() or "pid unknown")) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({self.what})\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd >= 0:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing releases the flock
            self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
