"""``wavestack serve``: the OSC server over UDP on loopback.

A process of its own takes datagrams off the socket as they come (``bridge.osc.drain``: the
kernel's buffer never fills while the server is busy) and the receive thread moves them into an
inbox; the handling thread checks their bytes (``bridge.osc.wire``),
converts arguments and answers what needs no session; everything else runs in order on the session
thread (``bridge.osc.dispatch``) and renders run on the job queue, so ``ping`` answers at once
while a plugin loads or a render runs. Every request that can fail is answered: ``ack``, ``error``,
or a reply of its own (see ``bridge.protocol``). Replies go to the sender's address and to every
subscribed port (Max and Pd cannot listen on the port they send from). Malformed datagrams are
counted, logged and answered; they never stop the server.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import logging
import os
import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bridge.osc import wire
from bridge.osc.dispatch import Addr, Dispatcher
from bridge.osc.drain import Drain, keep_off
from bridge.osc.follow import Follower
from bridge.osc.handlers import Handlers
from bridge.osc.jobs import Job, JobQueue
from bridge.osc.udpdrops import system_drops
from bridge.protocol import PREFIX, ProtocolError
from bridge.session import Session

log = logging.getLogger("wavestack.server")
MAX_DATAGRAM = 65535
MAX_REPLY = 65507  # the largest UDP payload over IPv4
RECEIVE_BUFFER = 8 << 20  # bytes asked of the kernel: a burst of thousands of messages fits
HEARTBEAT = 0.4  # seconds between progress replies of a running job, at most
DROPS_EVERY = 0.5  # seconds between looks at what the system dropped for the socket
MAX_AHEAD = 60.0  # seconds a bundle's time tag may lie in the future
MAX_SCHEDULED = 1000  # messages waiting for their time tags at once
MAX_SUBSCRIBERS = 16  # reply ports; each reply is sent to all of them
BURST = 16  # datagrams received and not yet read, or not yet handled, that mean a burst;
BURST_PAUSE = 0.002  # then the server sleeps this long at a time while it goes on (BURST / 2 or
# more datagrams a pause),
BURST_MAX_PAUSE = 1.0  # at most this long in all before it handles what came
INBOX = 100_000  # datagrams received and not yet handled, at most; more are dropped (counted, logged)
INBOX_BYTES = 64 << 20  # … and their bytes
JOB_REPLIES = {"/progress", "/done", "/status", "/seed"}  # replies whose first value is the job id (or track)


class ReplyTo:
    """``reply(path, *values)``: sends to one requester (``addr``; None: nobody in particular)
    and to every subscriber."""

    def __init__(self, server: Server, addr: Addr | None) -> None:
        self.server, self.addr = server, addr

    def __call__(self, path: str, *args: Any) -> None:
        self.server.send(path, *args, to=self.addr)


class Schedule:
    """Calls made at a given time (bundles with a future time tag), on their own thread, in time order."""

    def __init__(self, limit: int) -> None:
        self.limit, self._heap, self._count = limit, [], itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="wavestack-schedule", daemon=True)
        self._thread.start()

    def add(self, due: float, call: Any) -> bool:
        """Call ``call()`` at ``due`` (seconds since the epoch); False when ``limit`` calls wait already."""
        with self._wake:
            if len(self._heap) >= self.limit:
                return False
            heapq.heappush(self._heap, (due, next(self._count), call))
            self._wake.notify()
        return True

    def stop(self) -> None:
        """Drop what is still scheduled and end the thread."""
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.time()):
                    self._wake.wait(None if not self._heap else self._heap[0][0] - time.time())
                if self._stopped:
                    return
                _, _, call = heapq.heappop(self._heap)
            try:
                call()
            except Exception:  # one scheduled message must not stop the others
                log.exception("scheduled message")


def default_root(projects_root: str | None, project: str | None) -> Path:
    """Where OSC clients may open projects and read audio: the root given, else the folder that
    holds the starting project, else the user's home folder."""
    if projects_root:
        return Path(projects_root)
    if project:
        return Path(project).expanduser().resolve().parent
    return Path.home()


def allowed_networks(allow: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The client addresses or networks ``--allow`` names; a malformed one raises ValueError."""
    nets = []
    for text in allow:
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"--allow {text}: not an address or network (e.g. 192.168.1.20 or "
                             "192.168.1.0/24)") from None
    return nets


class Server:
    """The loop: receive, check the bytes, dispatch; replies to the sender and every subscriber."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, project: str | None = None, *,
                 oscquery_port: int | None = None, projects_root: str | None = None,
                 allow: tuple[str, ...] = ()) -> None:
        self.subscribers: set[Addr] = set()
        self.stats = {"received": 0, "malformed": 0, "errors": 0, "ignored": 0, "dropped": 0, "bursts": 0,
                      "dropped_by_system": 0}
        self.inbox: queue.Queue[tuple[bytes, Addr] | None] = queue.Queue(INBOX)
        self._inbox_bytes = 0
        self._inbox_lock = threading.Lock()
        self._dropped_logged = 0.0
        self._burst_until = 0.0  # the handling thread sleeps until then (a burst is coming in)
        self._drained = 0  # datagrams the receiving process passed on (or dropped), as read here
        self._handling: threading.Thread | None = None
        self._drain: Drain | None = None
        self.allowed = allowed_networks(allow)
        self._ignored_hosts: set[str] = set()
        self._last_progress: dict[int, float] = {}
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.receive_buffer = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if self.receive_buffer < RECEIVE_BUFFER:  # Linux grants at most net.core.rmem_max (doubled)
            log.warning("the system granted a %d-KiB receive buffer of the %d KiB asked: a burst of "
                        "messages may be dropped; raise it with: sudo sysctl -w net.core.rmem_max=%d",
                        self.receive_buffer // 1024, RECEIVE_BUFFER // 1024, RECEIVE_BUFFER)
        self.sock.bind((host, port))
        self._system_drops = system_drops(self.sock)  # None: this system does not count them
        self._drops_checked = 0.0
        self.sock.settimeout(0.1)
        self.address: Addr = self.sock.getsockname()
        self.jobs = JobQueue(self._on_job)
        self.scheduled = Schedule(MAX_SCHEDULED)
        self.handlers = Handlers(self.jobs, self.reply_to(None), default_root(projects_root, project))
        self.dispatcher = Dispatcher(self.handlers, {"subscribe": self._subscribe,
                                                     "unsubscribe": self._unsubscribe},
                                     self.reply_to, self._count_error)
        self.oscquery = None
        if project:  # before anything is received; a project that cannot be opened is raised here
            try:
                self.handlers.project({"folder": project}, self.reply_to(None))
            except BaseException:
                self.shutdown()
                raise
        if oscquery_port is not None:
            from bridge.osc.oscquery import OscQueryServer

            try:
                self.oscquery = OscQueryServer(self.state, self.address, host, oscquery_port,
                                               admitted=self.allows)
            except OSError:
                self.sock.close()
                raise

    @property
    def session(self) -> Session:
        """The session the server holds."""
        return self.handlers.session

    @property
    def follower(self) -> Follower | None:
        """The DAW follower, if one runs."""
        return self.handlers.follower

    def state(self) -> dict[str, Any]:
        """A copy of the session as plain data, safe to read from another thread."""
        return self.handlers.state()

    def dispatch(self, address: str, values: list[Any], addr: Addr | None) -> None:
        """Hand one parsed message to the dispatcher."""
        self.dispatcher.dispatch(address, values, addr)

    def settle(self) -> None:
        """Wait until every message received so far has taken effect (tests, start-up)."""
        self.inbox.join()
        self.dispatcher.settle()

    # ------------------------------------------------------------------ loop
    def serve_forever(self) -> None:
        """Receive and answer until shut down."""
        log.info("listening on udp://%s:%d (OSC, prefix %s)", *self.address, PREFIX)
        if self.oscquery is not None:
            self.oscquery.start()
        self._start_drain()
        self._start_handling()
        keep_off(self._drain_core())
        while not self._stop.is_set():
            if self._drain is not None:
                self._read_drain()
            else:
                try:
                    data, addr = self.sock.recvfrom(MAX_DATAGRAM)
                except TimeoutError:
                    data = None
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                if data is not None and self.admitted(addr):
                    self._take(data, addr)
            self._heartbeat()
            self._check_system_drops()
        with contextlib.suppress(queue.Full):  # (if full, it sees the server stop after its next one)
            self.inbox.put_nowait(None)  # the handling thread ends once it reaches this

    def _start_drain(self) -> None:
        """Receive in a process of its own (``bridge.osc.drain``), else on this thread; once."""
        if self._drain is not None or self._stop.is_set() or os.name != "posix":  # (pipes + select)
            return
        try:
            self._drain = Drain(self.sock, INBOX, INBOX_BYTES)
        except (OSError, ValueError) as exc:  # no process here: this thread receives, as fast as it can
            log.warning("receiving on the server's own thread (%s): a burst may be dropped", exc)
            return
        if not self._drain.realtime and self.receive_buffer < RECEIVE_BUFFER:
            log.warning("the receiving process runs at normal priority with a %d-KiB buffer: while "
                        "other programs hold the cores, a burst may be dropped; run the server as a "
                        "user allowed realtime priority (ulimit -r, as an audio group grants) or "
                        "raise the buffer", self.receive_buffer // 1024)

    def _read_drain(self) -> None:
        """Move what the receiving process took off the socket into the inbox."""
        drain = self._drain
        if drain is None:  # (shutdown took it)
            return
        ahead = drain.received() - self._drained  # taken off the socket, not yet read from the pipe
        if ahead >= BURST or self.inbox.qsize() >= BURST:  # coming in faster than read or handled
            self._sit_out_burst(drain)
        got = drain.read(0.1)
        if got is None:
            if not self._stop.is_set():
                log.warning("the receiving process ended (exit %s); receiving on the server's own "
                            "thread from now on", drain.proc.poll())
                self._drain = None
                drain.close()
            return
        datagrams, dropped = got
        self._drained += len(datagrams) + dropped
        if dropped:
            self.stats["dropped"] += dropped
            log.warning("dropped datagrams: %d more than the server holds unhandled (%d, %d MiB); "
                        "%d dropped so far", dropped, INBOX, INBOX_BYTES >> 20, self.stats["dropped"])
        for data, addr in datagrams:
            if self.admitted(addr):
                self._take(data, addr)

    def _sit_out_burst(self, drain: Drain) -> int:
        """A burst is coming in: while the receiving process goes on taking datagrams off the
        socket quickly, this process (this thread, and the handling thread: ``_handle_inbox``)
        sleeps, leaving the cores to it and to the sender. Sharing a core with a busy server, it
        would lose its turn for milliseconds at a time, and the kernel's buffer holds only about
        1.5 ms of a burst at the size a stock Linux grants (416 KiB). Returns the pauses slept."""
        self.stats["bursts"] += 1
        deadline, pauses = time.monotonic() + BURST_MAX_PAUSE, 0
        before = drain.received()
        while before >= 0 and time.monotonic() < deadline:
            self._burst_until = time.monotonic() + 2 * BURST_PAUSE
            time.sleep(BURST_PAUSE)
            pauses += 1
            now = drain.received()
            if now - before < BURST // 2:  # over (a few thousand a second or fewer now)
                break
            before = now
        self._burst_until = 0.0
        return pauses

    def _start_handling(self) -> None:
        """The handling thread, once (``start`` starts it before the loop; ``serve_forever`` too)."""
        with self._inbox_lock:
            if self._handling is None:
                self._handling = threading.Thread(target=self._handle_inbox, name="wavestack-osc-handle",
                                                  daemon=True)
                self._handling.start()

    def _take(self, data: bytes, addr: Addr) -> None:
        """Into the inbox, unless it is full (then the datagram is dropped, counted and logged)."""
        with self._inbox_lock:
            room = self._inbox_bytes + len(data) <= INBOX_BYTES
            if room:
                self._inbox_bytes += len(data)
        try:
            if not room:
                raise queue.Full
            self.inbox.put_nowait((data, addr))
        except queue.Full:
            if room:
                with self._inbox_lock:
                    self._inbox_bytes -= len(data)
            self.stats["dropped"] += 1
            now = time.monotonic()
            if now - self._dropped_logged > 1.0:
                self._dropped_logged = now
                log.warning("dropped datagrams: %d received and not yet handled (at most %d, %d MiB); "
                            "%d dropped so far", self.inbox.qsize(), INBOX, INBOX_BYTES >> 20,
                            self.stats["dropped"])

    def _drain_core(self) -> int | None:
        drain = self._drain
        return None if drain is None else drain.core

    def _handle_inbox(self) -> None:
        """The handling thread: every received datagram, in order."""
        keep_off(self._drain_core())
        while (item := self.inbox.get()) is not None and not self._stop.is_set():
            while time.monotonic() < self._burst_until:  # (see _sit_out_burst)
                time.sleep(BURST_PAUSE)
            data, addr = item
            with self._inbox_lock:
                self._inbox_bytes -= len(data)
            try:
                self.handle(data, addr)
            except Exception:  # nothing a datagram does may stop the server
                log.exception("handling a datagram from %s failed", addr)
            finally:
                self.inbox.task_done()
        self.inbox.task_done()

    def allows(self, host: str) -> bool:
        """Whether client address ``host`` is this machine's or an allowed client's (``--allow``)."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return ip.is_loopback or any(ip in net for net in self.allowed)

    def admitted(self, addr: Addr) -> bool:
        """Whether a datagram from ``addr`` is handled: this machine's, or an allowed client's
        (``--allow``); others are counted and ignored, each host logged once."""
        if self.allows(addr[0]):
            return True
        self.stats["ignored"] += 1
        if addr[0] not in self._ignored_hosts and len(self._ignored_hosts) < 1024:
            self._ignored_hosts.add(addr[0])
            log.warning("ignored OSC from %s: not this machine and not allowed (serve --allow %s)",
                        addr[0], addr[0])
        return False

    def start(self) -> threading.Thread:
        """Serve on a daemon thread (the handling thread and the receiving process run when this
        returns)."""
        self._start_drain()
        self._start_handling()
        thread = threading.Thread(target=self.serve_forever, name="wavestack-osc", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        """Cancel queued and running jobs (nothing partial is written), then close the socket."""
        self._stop.set()
        self.scheduled.stop()
        self.dispatcher.stop()
        self.jobs.stop()
        if self.handlers.follower is not None:
            self.handlers.follower.stop()
        self.handlers.close()
        drain, self._drain = self._drain, None
        if drain is not None:  # it holds the socket too
            drain.close()
        self.sock.close()
        if self.oscquery is not None:
            self.oscquery.shutdown()

    # ------------------------------------------------------------------ receive
    def handle(self, data: bytes, addr: Addr) -> None:
        """Check one datagram's bytes and dispatch its messages."""
        self.stats["received"] += 1
        try:
            messages, tags, times = wire.parse_timed(data)
        except Exception as exc:  # python-osc raises several kinds on garbage
            self.stats["malformed"] += 1
            log.warning("malformed packet (%d bytes) from %s:%d: %s", len(data), *addr, exc)
            text = f"malformed OSC packet ({len(data)} bytes): {exc}"
            self.send("/error", _address_of(data), text, to=addr)
            return
        now = time.time()
        for message, typetags, due in zip(messages, tags, times, strict=True):
            values = _decimal_floats(list(message.params), typetags)
            if due <= now + 0.001:
                self.dispatch(message.address, values, addr)
            elif due - now > MAX_AHEAD:
                self.send("/error", message.address, f"bundle time tag {due - now:.0f} s ahead; at most "
                          f"{MAX_AHEAD:.0f} s", to=addr)
            elif not self.scheduled.add(due, lambda a=message.address, v=values: self.dispatch(a, v, addr)):
                self.send("/error", message.address, f"{MAX_SCHEDULED} messages wait for their time tags "
                          "already; send this one later", to=addr)

    def _count_error(self) -> None:
        self.stats["errors"] += 1

    # ------------------------------------------------------------------ send
    def reply_to(self, addr: Addr | None) -> ReplyTo:
        """A reply callable for requester ``addr``."""
        return ReplyTo(self, addr)

    def send(self, path: str, *args: Any, to: Addr | None = None) -> None:
        """Send one reply to ``to`` and every subscriber."""
        dgram = wire.encode(PREFIX + path, [str(a) if isinstance(a, Path) else a for a in args])
        if len(dgram) > MAX_REPLY:  # said in an error that names what it answers: a job by its id
            text = f"reply {PREFIX + path} is {len(dgram)} bytes, more than one UDP datagram holds"
            what = args[0] if path in JOB_REPLIES and args else PREFIX + path
            dgram = wire.encode(PREFIX + "/error", [what, text])
        targets = set(self.subscribers)
        if to is not None:
            targets.add(to)
        for target in targets:
            try:
                self.sock.sendto(dgram, target)
            except OSError as exc:  # an unreachable subscriber must not break the server
                log.debug("cannot send to %s: %s", target, exc)

    # ------------------------------------------------------------------ subscriptions
    def _subscribe(self, args: dict, reply: ReplyTo) -> None:
        host = args["host"]
        if host not in ("127.0.0.1", "localhost") and (reply.addr is None or host != reply.addr[0]):
            raise ProtocolError("subscribe: replies go to loopback or to the sender's own host only")
        target = (socket.gethostbyname(host), args["port"])
        if target[1] == self.address[1] and target[0] in (self.address[0], "127.0.0.1"):
            raise ProtocolError("subscribe: that is this server's own port; give the port your client "
                                "listens on")
        if target not in self.subscribers and len(self.subscribers) >= MAX_SUBSCRIBERS:
            raise ProtocolError(f"subscribe: {MAX_SUBSCRIBERS} ports subscribed already; "
                                "unsubscribe one first")
        self.subscribers.add(target)

    def _unsubscribe(self, args: dict, reply: ReplyTo) -> None:
        self.subscribers.discard((socket.gethostbyname(args["host"]), args["port"]))

    # ------------------------------------------------------------------ jobs
    def _on_job(self, job: Job, event: str) -> None:
        reply = self.handlers.requesters.get(job.id) or self.reply_to(None)
        if event == "phase":
            reply("/phase", job.id, job.phase)
        elif event == "progress" or job.state == "running":
            now = time.monotonic()
            if event == "state" or now - self._last_progress.get(job.id, 0.0) >= 0.1:
                self._last_progress[job.id] = now
                reply("/progress", job.id, float(job.fraction))
        elif job.state == "done":
            reply("/done", job.id, *[str(p) for p in job.paths])
        elif job.state == "failed":
            reply("/error", job.id, job.error)
        elif job.state == "cancelled":
            reply("/error", job.id, f"job {job.id} cancelled; nothing was written")
        if job.finished:  # its last reply is sent: nothing of it is kept here
            self.handlers.requesters.pop(job.id, None)
            self._last_progress.pop(job.id, None)

    def _check_system_drops(self) -> None:
        """Say in the log (and count in ``stats``) what the system dropped since the last look, at
        most every ``DROPS_EVERY`` seconds: datagrams that came while the receive buffer was full."""
        now = time.monotonic()
        if self._system_drops is None or now - self._drops_checked < DROPS_EVERY:
            return
        self._drops_checked = now
        count = system_drops(self.sock)
        if count is None or count <= self._system_drops:
            return
        new, self._system_drops = count - self._system_drops, count
        self.stats["dropped_by_system"] += new
        remedy = (f"raise it with: sudo sysctl -w net.core.rmem_max={RECEIVE_BUFFER}"
                  if self.receive_buffer < RECEIVE_BUFFER else "send fewer messages at once")
        log.warning("the system dropped %d messages before the server could take them (its %d-KiB "
                    "receive buffer was full; %d so far): %s", new, self.receive_buffer // 1024,
                    self.stats["dropped_by_system"], remedy)

    def _heartbeat(self) -> None:
        job = self.jobs.current
        if job is not None and time.monotonic() - self._last_progress.get(job.id, 0.0) >= HEARTBEAT:
            self._on_job(job, "progress")


def _address_of(data: bytes) -> str:
    """The address a malformed message was sent to, if it can be read; else the prefix."""
    end = data.find(b"\0")
    if data.startswith(b"/") and 0 < end <= 256:
        text = data[:end].decode("utf-8", errors="replace")
        if text.isprintable():
            return text
    return PREFIX


def _decimal_floats(values: list[Any], typetags: str) -> list[Any]:
    """32-bit OSC floats as the shortest decimal that is the same float32: a client that sends 0.3
    gets 0.3 in the session and the manifest, not 0.30000001192092896."""
    if len(values) != len(typetags):  # arrays: left as they are
        return values
    return [float(str(np.float32(v))) if tag == "f" else v for v, tag in zip(values, typetags, strict=False)]
