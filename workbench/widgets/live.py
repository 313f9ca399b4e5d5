"""Background refresh for notebook widgets, so a live view never blocks the kernel.

A widget's `refresh` runs in a daemon thread every `every_s` seconds; ipykernel sends the
resulting widget-state messages from that thread, so the notebook stays usable while the view
updates. The loop stops when `refresh` returns False (the thing it shows has ended) or `stop()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Poller:
    def __init__(self, refresh: Callable[[], bool | None], every_s: float, name: str) -> None:
        self._refresh = refresh
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> Poller:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                if self._refresh() is False:
                    return
            except Exception as exc:  # shown by the widget; a broken refresh must not spin
                self.error = exc
                return

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
