"""A job queue: renders run on a worker thread, one at a time, off the OSC receive thread.

A job is a function ``work(progress, should_cancel) -> list[Path]``; ``progress(fraction, phase=None)``
reports how far it is and, when it is doing something other than rendering (preparing the fast
sampler on a first run), what (``""``: rendering again). Its state moves queued → running → done |
failed | cancelled; listeners hear every state change, progress report and phase (the server turns
them into OSC replies). Cancelling a queued job drops it; cancelling a running one
makes the engine stop at its next check (every 50 ms), and the render writes nothing partial.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("wavestack.jobs")
Work = Callable[[Callable[[float], None], Callable[[], bool]], list[Path]]
Listener = Callable[["Job", str], None]  # (job, event): event is "state", "progress" or "phase"
MAX_WAITING = 100  # jobs queued or running at once; more are refused until some finish
KEPT_FINISHED = 200  # finished jobs remembered for /job/status (the oldest are forgotten)


@dataclass
class Job:
    """One render job: its work, state, progress, files or error."""
    id: int
    work: Work
    state: str = "queued"  # queued, running, done, failed, cancelled
    fraction: float = 0.0
    phase: str = ""  # what a running job does besides rendering ("" while it renders)
    paths: list[Path] = field(default_factory=list)
    error: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        """Whether it is done, failed or cancelled."""
        return self.state in ("done", "failed", "cancelled")


class QueueFull(ValueError):
    """Too many jobs wait or run; the text says what to do."""


class JobQueue:
    """Runs jobs one at a time on a worker thread and tells a listener of every change."""
    def __init__(self, listener: Listener | None = None) -> None:
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self.last_id = 0
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._listener = listener
        self._lock = threading.Lock()
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._run, name="wavestack-jobs", daemon=True)
        self._thread.start()

    def create(self, work: Work) -> Job:
        """A queued job that does not run until :meth:`start` (so its id can be announced first);
        refused (QueueFull) while MAX_WAITING jobs wait or run."""
        with self._lock:
            unfinished = [j for j in self.jobs.values() if not j.finished]
            if len(unfinished) >= MAX_WAITING:
                raise QueueFull(f"{MAX_WAITING} renders are queued or running; wait for some to finish "
                                "or cancel them (/wavestack/job/cancel)")
            finished = [j.id for j in self.jobs.values() if j.finished]
            for old in finished[: max(0, len(finished) - KEPT_FINISHED + 1)]:
                del self.jobs[old]  # ids only grow: the first finished ones are the oldest
            job = Job(next(self._ids), work)
            self.jobs[job.id] = job
            self.last_id = job.id
        return job

    def start(self, job: Job) -> Job:
        """Queue a job made by ``create``."""
        self._queue.put(job)
        return job

    def get(self, job_id: int) -> Job:
        """The job with this id."""
        try:
            return self.jobs[job_id]
        except KeyError:
            old = 0 < job_id <= self.last_id
            raise KeyError(f"no job {job_id}" + (f" any more (the last {KEPT_FINISHED} finished jobs are "
                                                 "remembered)" if old else "")) from None

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued or running job."""
        job = self.get(job_id)
        job.cancel.set()
        if job.state == "queued":
            self._set(job, "cancelled")
        return job

    def cancel_all(self) -> None:
        """Cancel every unfinished job."""
        for job in list(self.jobs.values()):
            if not job.finished:
                self.cancel(job.id)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel everything and wait for the running job to stop."""
        self.cancel_all()
        self._queue.put(None)
        self._thread.join(timeout)

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

            def progress(fraction: float, phase: str | None = None, job: Job = job) -> None:
                job.fraction = max(job.fraction, min(1.0, float(fraction)))
                if phase is not None and phase != job.phase:
                    job.phase = phase
                    self._notify(job, "phase")
                self._notify(job, "progress")

            try:
                job.paths = job.work(progress, job.cancel.is_set)
                job.fraction = 1.0
                self._set(job, "done")
            except Cancelled:
                self._set(job, "cancelled")
            except Exception as exc:
                job.error = str(exc) or type(exc).__name__
                log.info("job %d failed: %s", job.id, job.error)
                self._set(job, "failed")
            finally:
                self.current = None
