"""Cross-process file locks: the kernel drops them when a process dies, so none outlives a kill."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mxm_dagster.common.errors import WarehouseBusyError


def wait_until(
    done: Callable[[], bool],
    timeout_seconds: float,
    poll_seconds: float,
    on_first_wait: Callable[[], None] | None = None,
) -> bool:
    """Call `done` until it returns True (then True) or `timeout_seconds` pass (then False);
    `on_first_wait` runs once, the first time `done` says no, so a wait is announced once."""
    deadline = time.monotonic() + timeout_seconds
    announced = False
    while not done():
        if time.monotonic() >= deadline:
            return False
        if not announced and on_first_wait:
            on_first_wait()
            announced = True
        time.sleep(poll_seconds)
    return True


class FileLock:
    """An exclusive flock on a file; acquire and release may happen on different threads."""

    def __init__(self, path: Path, what: str = "lock") -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def acquire(self, timeout_seconds: float, on_wait: Callable[[str], None] | None = None) -> None:
        """Wait at most `timeout_seconds` for the lock, saying once that it waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

        def locked() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        def say_waiting() -> None:
            if on_wait:
                on_wait(f"Waiting for the {self.what} ({self.path}): another run holds it")

        if not wait_until(locked, timeout_seconds, 0.1, say_waiting):
            os.close(fd)
            raise WarehouseBusyError(
                f"Gave up after {timeout_seconds:.0f} s waiting for the {self.what} "
                f"({self.path}): another run still holds it"
            )
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@contextmanager
def file_lock(
    path: Path,
    timeout_seconds: float,
    on_wait: Callable[[str], None] | None = None,
    what: str = "lock",
) -> Iterator[None]:
    """Hold an exclusive lock on `path`, waiting at most `timeout_seconds` for it."""
    lock = FileLock(path, what)
    lock.acquire(timeout_seconds, on_wait)
    try:
        yield
    finally:
        lock.release()
