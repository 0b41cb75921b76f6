"""The clock of the simulator: a thread that moves tasks along their timelines every few milliseconds.

Queries also bring a task up to date before answering, so the ticker exists for what nobody asks about:
callbacks must fire on time even when no client is polling.
"""

from __future__ import annotations

import logging
import threading

from kling_local.simulator.engine import Engine

TICK_S = 0.02
logger = logging.getLogger(__name__)


class Ticker:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self._engine.tick()
            except Exception:  # a bug in one tick must not stop time for every task
                logger.exception("simulator tick failed")
