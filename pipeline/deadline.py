"""One download's deadline and byte cap: :class:`Budget` shuts every socket of a download at
its deadline, so a server that trickles bytes cannot hold a worker thread past
``download.timeout``; :func:`running` makes it the budget of the current thread, which the
guarded connections of :mod:`pipeline.urlguard` read."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DownloadLimit(OSError):
    """A response over ``download.max_bytes`` or past the download's deadline."""


class Budget:
    """One download's deadline: at expiry every socket it opened is shut down, so a server
    that trickles bytes cannot hold the download past ``timeout`` (per-read timeouts would
    restart at each byte)."""

    def __init__(self, timeout: float):
        self.deadline = time.monotonic() + timeout
        self.expired = False
        self._watches: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout, self.expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or self.expired:
            raise DownloadLimit("timed out")
        return left

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._watches.append(sock.dup())  # shares the connection, survives TLS wrapping
            if self.expired:
                self._shutdown(self._watches[-1])

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._watches:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._watches:
                sock.close()
            self._watches.clear()


_current = threading.local()  # the Budget of the download running on this thread


def current() -> Budget | None:
    """The budget of the download running on this thread (None outside :func:`running`)."""
    return getattr(_current, "budget", None)


@contextmanager
def running(timeout: float) -> Iterator[Budget]:
    """A :class:`Budget` of ``timeout`` seconds for the download this thread runs in the block;
    closed (its watched sockets too) when the block ends."""
    budget = Budget(timeout)
    _current.budget = budget
    try:
        yield budget
    finally:
        _current.budget = None
        budget.close()
