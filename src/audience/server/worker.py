"""The worker that runs inside `audience serve` (the embedded default: one process on a laptop).

It is the runtime's `Worker` on a workspace of its own (its own connections; on DuckDB the same
database in this process), in a thread that ticks every `[worker] poll_seconds`, or at once when
a request queues a run (`wake`). Runs are claimed under the runtime's leases, so a separate
`audience worker` beside the server shares the work safely.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from audience.scheduling.worker import Worker
from audience.workspace import Workspace


class BackgroundWorker:
    """A worker thread over the workspace in `directory`."""

    def __init__(
        self,
        directory: Path,
        clock: Callable[[], datetime],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._on_error = on_error
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="audience-worker", daemon=True)

    def start(self) -> None:
        """Start working."""
        self._thread.start()

    def wake(self) -> None:
        """Look for ready runs now (a run was just queued)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop after the run under way, if any."""
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _work(self) -> None:
        with Workspace.open(self._directory, self._clock) as ws:
            worker = Worker(ws, on_error=self._on_error)
            poll = ws.settings.worker.poll_seconds
            while not self._stop.is_set():
                try:
                    worker.tick(self._stop)
                except Exception as error:  # the store unreachable, a bug: keep serving
                    if self._on_error is not None:
                        self._on_error(error)
                self._wake.wait(poll)
                self._wake.clear()
