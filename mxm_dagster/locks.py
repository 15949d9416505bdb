"""Cross-process file locks: the kernel drops them when a process dies, so none outlives a kill."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mxm_dagster.errors import WarehouseBusyError


@contextmanager
def file_lock(
    path: Path,
    timeout_seconds: float,
    on_wait: Callable[[str], None] | None = None,
    what: str = "lock",
) -> Iterator[None]:
    """Hold an exclusive lock on `path`, waiting at most `timeout_seconds` for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_seconds
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"Gave up after {timeout_seconds:.0f} s waiting for the {what} ({path}): "
                        "another run still holds it"
                    ) from None
                if not announced and on_wait:
                    on_wait(f"Waiting for the {what} ({path}): another run holds it")
                    announced = True
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
