"""A job queue: renders run on a worker thread, one at a time, off the OSC receive thread.

A job is a function ``work(progress, should_cancel) -> list[Path]``. Its state moves queued →
running → done | failed | cancelled; listeners hear every state change and progress report (the
server turns them into OSC replies). Cancelling a queued job drops it; cancelling a running one
makes the engine stop at its next check (every 50 ms), and the render writes nothing partial.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("wavestack.jobs")
Work = Callable[[Callable[[float], None], Callable[[], bool]], list[Path]]
Listener = Callable[["Job", str], None]  # (job, event): event is "state" or "progress"


class Stopped(Exception):
    """Raised inside a job's work when it is cancelled (for work that is not the engine's)."""


@dataclass
class Job:
    id: int
    label: str
    work: Work
    state: str = "queued"  # queued, running, done, failed, cancelled
    fraction: float = 0.0
    paths: list[Path] = field(default_factory=list)
    error: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


class JobQueue:
    def __init__(self, listener: Listener | None = None) -> None:
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._listener = listener
        self._lock = threading.Lock()
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._run, name="wavestack-jobs", daemon=True)
        self._thread.start()

    def create(self, label: str, work: Work) -> Job:
        """A queued job that does not run until :meth:`start` (so its id can be announced first)."""
        with self._lock:
            job = Job(next(self._ids), label, work)
            self.jobs[job.id] = job
        return job

    def start(self, job: Job) -> Job:
        self._queue.put(job)
        return job

    def submit(self, label: str, work: Work) -> Job:
        return self.start(self.create(label, work))

    def get(self, job_id: int) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise KeyError(f"no job {job_id}") from None

    def cancel(self, job_id: int) -> Job:
        job = self.get(job_id)
        job.cancel.set()
        if job.state == "queued":
            self._set(job, "cancelled")
        return job

    def cancel_all(self) -> None:
        for job in list(self.jobs.values()):
            if not job.finished:
                self.cancel(job.id)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel everything and wait for the running job to stop."""
        self.cancel_all()
        self._queue.put(None)
        self._thread.join(timeout)

    def wait(self, job: Job, timeout: float | None = None) -> Job:
        """Block until ``job`` has finished or ``timeout`` seconds passed (command line, tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not job.finished and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.01)
        return job

    def _notify(self, job: Job, event: str) -> None:
        if self._listener is not None:
            try:
                self._listener(job, event)
            except Exception:  # a listener must never kill the worker
                log.exception("job listener failed")

    def _set(self, job: Job, state: str) -> None:
        job.state = state
        self._notify(job, "state")

    def _run(self) -> None:
        from engine.errors import Cancelled

        while (job := self._queue.get()) is not None:
            if job.finished:
                continue
            self.current = job
            self._set(job, "running")

            def progress(fraction: float, job: Job = job) -> None:
                job.fraction = max(job.fraction, min(1.0, float(fraction)))
                self._notify(job, "progress")

            try:
                job.paths = job.work(progress, job.cancel.is_set)
                job.fraction = 1.0
                self._set(job, "done")
            except (Cancelled, Stopped):
                self._set(job, "cancelled")
            except Exception as exc:
                job.error = str(exc) or type(exc).__name__
                log.info("job %d failed: %s", job.id, job.error)
                self._set(job, "failed")
            finally:
                self.current = None
