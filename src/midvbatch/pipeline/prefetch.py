"""Read ahead: decode a clip's next frames in a thread while the processor works on the current ones.

FFmpeg decodes outside Python's lock, so a processor that spends its time in native code
(numpy, OpenCV, an inference runtime) overlaps with decoding, and a clip takes about the
longer of the two instead of their sum. At most `depth` frames wait decoded: that many
frames of memory more per worker.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()  # the source is exhausted


class Prefetch(Generic[T]):
    """Iterate over `source` from a thread that keeps up to `depth` items ready.

    What the source raises is raised by ``next`` in its place, after the items before it.
    ``close()`` stops the thread and closes the source; use it as a context manager or
    close it. The source is only ever touched by the thread (then by close(), once the
    thread has stopped). Where no thread can be started (the machine's threads ran out),
    ``next`` reads the source itself: no read-ahead, the same items.
    """

    def __init__(self, source: Iterator[T], depth: int) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self._source = source
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread: threading.Thread | None = threading.Thread(
            target=self._fill, name="midvbatch-prefetch", daemon=True
        )
        try:
            self._thread.start()
        except RuntimeError:  # can't start new thread: read in the caller's thread instead
            self._thread = None

    def _put(self, item: object) -> bool:
        """Hand `item` over unless asked to stop; False when stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def __iter__(self) -> Prefetch[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        if self._thread is None:
            return next(self._source)
        item = self._queue.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def close(self) -> None:
        """Stop reading ahead, drop what was read, close the source."""
        self._stop.set()
        self._done = True
        while self._thread is not None and self._thread.is_alive():
            try:
                self._queue.get_nowait()  # a put waiting on a full queue sees the stop sooner
            except queue.Empty:
                pass
            self._thread.join(timeout=0.1)
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
