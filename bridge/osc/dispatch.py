"""From a parsed message to its handler, driven by the protocol table.

The receive thread only looks the address up, converts its arguments and answers what needs no
session (``/ping``, subscriptions, job status and cancel). Everything else runs in order on one
session thread, so a plugin or a model that takes a minute to load never delays a ping, and
messages still take effect in the order they were sent.
"""

from __future__ import annotations

import difflib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from bridge.osc.handlers import Handlers, Reply, text
from bridge.protocol import BY_PATH, PREFIX, REPLIES, Address, ProtocolError

log = logging.getLogger("wavestack.server")
Addr = tuple[str, int]
Handler = Callable[[dict[str, Any], Reply], Any]
IMMEDIATE = {"/ping", "/subscribe", "/unsubscribe", "/job/status", "/job/cancel"}  # answered at once
QUERIES = {PREFIX + p for p in ("/ping", "/state/get", "/track/takes", "/track/list", "/models",
                                "/fx/catalog", "/job/status", "/subscribe", "/follow/status")}  # debug level
REPLY_PATHS = {PREFIX + r.path for r in REPLIES}  # what the server sends; received, it is ignored
LANE_LENGTH = 10_000  # messages waiting for the session thread; beyond, they are refused
# queries whose answer may fill a datagram: each sender may ask QUERY_BURST of them at once, then
# QUERY_RATE a second (a 28-byte /state/get can be answered with 63 KB: this bounds the replies
# one client draws, and the session thread's time it takes from the others)
HEAVY = {PREFIX + p for p in ("/state/get", "/track/takes", "/track/list", "/models", "/fx/catalog")}
QUERY_RATE, QUERY_BURST = 50.0, 500
EXPECTED = (ProtocolError, FileNotFoundError, KeyError, ValueError)  # refusals, not failures


def name_of(address: Address) -> str:
    """The handler's name for ``address``: ``/track/add`` → ``track_add``."""
    return address.path.strip("/").replace("/", "_")


def handler_for(address: Address, handlers: Handlers, own: dict[str, Handler]) -> Handler | None:
    """What runs ``address``: a handler of its own, else the generic setter if its arguments name
    the attributes they set; None if neither (a table entry nothing implements)."""
    name = name_of(address)
    if name in own:
        return own[name]
    if hasattr(handlers, name):
        return getattr(handlers, name)
    if any(arg.field for arg in address.args):
        return lambda args, reply: handlers.set_fields(address, args)
    return None


class RateLimit:
    """A token bucket per sender: ``burst`` at once, then ``rate`` a second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[Addr | None, tuple[float, float]] = {}  # sender → (tokens, when)
        self._warned: dict[Addr | None, float] = {}
        self.refused = 0

    def allow(self, sender: Addr | None) -> bool:
        """Take a token from ``sender``'s bucket; False if it is empty (the request is refused)."""
        now = self.clock()
        tokens, then = self._buckets.get(sender, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if len(self._buckets) > 4096:  # forget full buckets: they are what a new sender gets
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.burst}
        self._buckets[sender] = (tokens - 1, now) if tokens >= 1 else (tokens, now)
        self.refused += tokens < 1
        return tokens >= 1

    def warn(self, sender: Addr | None) -> bool:
        """Whether to tell ``sender`` it was refused: once a second at most (errors are replies too)."""
        now = self.clock()
        if now - self._warned.get(sender, -1e9) < 1.0:
            return False
        self._warned[sender] = now
        if len(self._warned) > 4096:
            self._warned = {k: t for k, t in self._warned.items() if now - t < 1.0}
        return True


class Dispatcher:
    """Routes messages to handlers; ``own`` holds the server's handlers (subscriptions)."""

    def __init__(self, handlers: Handlers, own: dict[str, Handler],
                 reply_to: Callable[[Addr | None], Reply], on_error: Callable[[], None]) -> None:
        self.handlers = handlers
        self.routes = {a.full: handler_for(a, handlers, own) for a in BY_PATH.values()}
        self.reply_to = reply_to
        self.on_error = on_error
        self.queries = RateLimit(QUERY_RATE, QUERY_BURST)
        self.lane: queue.Queue[tuple[Address, dict[str, Any], Addr | None] | None] = queue.Queue(LANE_LENGTH)
        self._thread = threading.Thread(target=self._run_lane, name="wavestack-session", daemon=True)
        self._thread.start()

    def dispatch(self, address: str, values: list[Any], addr: Addr | None) -> None:
        """Convert one message's arguments and run or queue its handler; errors are answered."""
        spec = BY_PATH.get(address)
        if spec is None and address in REPLY_PATHS:
            log.debug("ignored %s from %s: a reply, never answered (no reply loops)", address, addr)
            return
        try:
            level = logging.DEBUG if address in QUERIES else logging.INFO  # a window polls these
            log.log(level, "%s %s from %s", address, _short(values), _sender(addr))
            if spec is None:
                raise ProtocolError(unknown(address))
            args = spec.parse(values)
            if address in HEAVY and not self.queries.allow(addr):
                if self.queries.warn(addr):
                    self.fail(address, f"too many queries from {_sender(addr)} (at most {QUERY_BURST} at "
                              f"once, then {QUERY_RATE:g} a second); ask again in a moment", addr)
                return
            if spec.path in IMMEDIATE:
                self._run(spec, args, addr)
            else:
                self.lane.put_nowait((spec, args, addr))
        except queue.Full:
            self.fail(address, f"the server is busy ({LANE_LENGTH} messages waiting); send again later",
                      addr)
        except EXPECTED as exc:
            self.fail(address, text(exc), addr)
        except Exception as exc:  # nothing in one message's handling may stop the receive loop
            log.exception("%s could not be handled", address[:200])
            self.fail(address, text(exc), addr)

    def settle(self) -> None:
        """Wait until every message handed to the session thread so far has taken effect."""
        self.lane.join()

    def stop(self, timeout: float = 2.0) -> None:
        """End the session thread once what is queued has run (waiting at most ``timeout`` s)."""
        self.lane.put(None)
        self._thread.join(timeout)

    def fail(self, where: str | int, message: str, addr: Addr | None) -> None:
        """Count, log and answer an error."""
        self.on_error()
        log.info("error %s: %s", where, message)
        self.reply_to(addr)("/error", where, message)

    def _run(self, spec: Address, args: dict[str, Any], addr: Addr | None) -> None:
        reply = self.reply_to(addr)
        handler = self.routes[spec.full]
        try:
            if handler is None:
                raise ProtocolError(f"{spec.full} is in the protocol table but nothing handles it")
            answered = handler(args, reply)
        except EXPECTED as exc:
            self.fail(spec.full, text(exc), addr)
            return
        except Exception as exc:
            from engine.errors import EngineError

            if not isinstance(exc, EngineError):
                log.exception("%s failed", spec.full)
            self.fail(spec.full, text(exc), addr)
            return
        if not answered:
            reply("/ack", spec.full)

    def _run_lane(self) -> None:
        while (item := self.lane.get()) is not None:
            try:
                self._run(*item)
            except Exception:  # a reply that cannot be sent must not stop the session thread
                log.exception("session thread")
            finally:
                self.lane.task_done()
        self.lane.task_done()


def _sender(addr: Addr | None) -> str:
    return f"{addr[0]}:{addr[1]}" if addr else "-"


def unknown(address: str) -> str:
    """The error for an address the table does not have, with the nearest ones it has."""
    path = address[len(PREFIX):] if address.startswith(PREFIX + "/") else address
    paths = {a.path: a.full for a in BY_PATH.values()}
    near = [paths[p] for p in difflib.get_close_matches(path, list(paths), n=2, cutoff=0.75)]
    hint = f"; did you mean {' or '.join(near)}?" if near else \
        f"; every address starts with {PREFIX}/ (see the protocol reference in the README)"
    return f"unknown address {address}{hint}"


def _short(values: list[Any]) -> str:
    text = " ".join(map(repr, values))
    return text if len(text) <= 200 else text[:200] + "…"
