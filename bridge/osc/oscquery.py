"""OSCQuery (the Vidvox proposal): the server's OSC namespace as JSON over HTTP, on loopback.

The tree is generated from the protocol table: every address is a node with ``FULL_PATH``,
``TYPE`` (OSC type tags), ``ACCESS``, ``RANGE`` and ``DESCRIPTION``; session parameters carry their
current ``VALUE``. Track parameters need the track name as their first argument, so their current
values are published, read-only, under ``/wavestack/tracks/<name>/<parameter>``.

    GET /                          the whole tree
    GET /wavestack/tempo           one node
    GET /wavestack/tempo?VALUE     one attribute: {"VALUE": [120.0]}; 204 if the node has none
    GET /?HOST_INFO                name, OSC port and transport, supported extensions

Unknown paths answer 404, unknown attributes 400, anything but GET 405. A request from a client the
OSC server would not hear, or addressed to a host name that is not this machine's (a web page's
DNS rebinding: evil.example resolving to 127.0.0.1), answers 403 and reveals nothing.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from bridge import __version__
from bridge.protocol import PREFIX, TABLE, Address, Arg, current

log = logging.getLogger("wavestack.oscquery")
NO_VALUE, READ, WRITE, READ_WRITE = 0, 1, 2, 3
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "ACCESS", "RANGE", "VALUE", "DESCRIPTION")
EXTENSIONS = {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "TAGS": False,
              "EXTENDED_TYPE": False, "UNIT": False, "CRITICAL": False, "CLIPMODE": False,
              "LISTEN": False, "PATH_CHANGED": False, "PATH_RENAMED": False, "PATH_ADDED": False,
              "PATH_REMOVED": False}

def _range(arg: Arg) -> dict[str, Any] | None:
    if arg.choices:
        return {"VALS": list(arg.choices)}
    out = {k: v for k, v in (("MIN", arg.min), ("MAX", arg.max)) if v is not None}
    return out or None


def _leaf(address: Address, state: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"FULL_PATH": address.full, "DESCRIPTION": address.help}
    if address.args:
        node["TYPE"] = address.typetags
        node["RANGE"] = [_range(a) for a in address.args]
    if not address.args:  # a method without arguments: no value associated (the proposal's ACCESS 0)
        node["ACCESS"] = NO_VALUE
        return node
    has_value = address.group == "session" and any(arg.field for arg in address.args)
    node["ACCESS"] = READ_WRITE if has_value else WRITE
    # a write-only method's VALUE: one null per argument (clients build a node's types from it)
    node["VALUE"] = _value(address, address.args, state) if has_value else [None] * len(address.args)
    return node


def _value(address: Address, args: tuple[Arg, ...], data: dict[str, Any]) -> list[Any]:
    """One entry per type tag; ``null`` for what is unset (a length given in bars has no seconds)."""
    values = current(address, data)
    return values if values else [None] * len(args)


def osc_name(text: str) -> str:
    """``text`` as one legal OSC path part: characters OSC reserves (space # * , / ? [ ] { }) and
    ``%`` itself percent-encoded."""
    return "".join(f"%{ord(c):02X}" if c in " #*,/?[]{}%" or not c.isprintable() else c for c in text)


def _container(path: str, description: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"FULL_PATH": path, "ACCESS": NO_VALUE, "CONTENTS": {}}
    if description:
        node["DESCRIPTION"] = description
    return node


def _insert(root: dict[str, Any], full: str, node: dict[str, Any]) -> None:
    """Put ``node`` at ``full``, making the containers above it (no method is also a container:
    the protocol table has no address under another)."""
    parts = full.strip("/").split("/")
    here = root
    for i, part in enumerate(parts[:-1]):
        here = here["CONTENTS"].setdefault(part, _container("/" + "/".join(parts[:i + 1])))
    here["CONTENTS"][parts[-1]] = node


def namespace(state: dict[str, Any]) -> dict[str, Any]:
    """The whole OSCQuery tree for a session state (``Session.to_dict()``)."""
    root = _container("/", f"wavestack {__version__}: neural audio stems over OSC")
    for address in TABLE:
        _insert(root, address.full, _leaf(address, state))
    tracks = _container(PREFIX + "/tracks", "current values of each track's parameters (read-only; "
                                          "set them with /wavestack/track/<parameter> <track> <value>)")
    _insert(root, tracks["FULL_PATH"], tracks)
    parameters = [a for a in TABLE if a.group == "track" and any(arg.field for arg in a.args)]
    for track in state["tracks"]:
        base = f"{PREFIX}/tracks/{osc_name(track['name'])}"
        for address in parameters:
            args = address.args[1:]
            leaf = {"FULL_PATH": f"{base}/{address.path.rsplit('/', 1)[1]}", "ACCESS": READ,
                    "TYPE": "".join(a.type for a in args), "RANGE": [_range(a) for a in args],
                    "VALUE": _value(address, args, track),
                    "DESCRIPTION": f"{address.help} (set with {address.full})"}
            _insert(root, leaf["FULL_PATH"], leaf)
    return root


def find(root: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The node at ``path`` of a namespace, or None."""
    here = root
    for part in [p for p in path.split("/") if p]:
        contents = here.get("CONTENTS")
        if not contents or part not in contents:
            return None
        here = contents[part]
    return here


def host_info(osc_host: str, osc_port: int) -> dict[str, Any]:
    """The OSCQuery HOST_INFO answer for this server."""
    return {"NAME": "wavestack", "OSC_IP": osc_host, "OSC_PORT": osc_port, "OSC_TRANSPORT": "UDP",
            "EXTENSIONS": EXTENSIONS}


def addressed_to_this_machine(host_header: str | None) -> bool:
    """Whether an HTTP ``Host`` names this machine: an address literal, ``localhost``, or this
    machine's own names. A browser sends the name the page asked for, so a page whose name was
    made to resolve to 127.0.0.1 (DNS rebinding) is told apart here. No Host (HTTP/1.0): not a
    browser, allowed."""
    if not host_header:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):  # [v6]:port
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    host = host.rstrip(".")
    own = socket.gethostname().lower()  # (no name lookups: a request never waits on DNS)
    return host in ("localhost", own, f"{own}.local") or host.endswith(".localhost")


MAX_CONNECTIONS = 16  # HTTP connections served at once; more are closed at once (no thread each)


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS of them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            log.debug("OSCQuery: %d connections open already; closing one from %s", MAX_CONNECTIONS,
                      client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class OscQueryServer:
    """HTTP on ``host:port`` in a daemon thread; ``state`` returns the session as a dict."""

    def __init__(self, state: Callable[[], dict[str, Any]], osc_address: tuple[str, int],
                 host: str = "127.0.0.1", port: int = 0,
                 admitted: Callable[[str], bool] = lambda ip: ipaddress.ip_address(ip).is_loopback) -> None:
        """``admitted``: whether a client address may read (the OSC server's own rule)."""
        query = self

        class Handler(BaseHTTPRequestHandler):
            server_version = f"wavestack/{__version__}"
            protocol_version = "HTTP/1.1"  # what the OSCQuery proposal names; every answer has a length
            timeout = 5  # seconds an idle or half-sent connection is kept

            def do_GET(self) -> None:
                try:
                    status, body = query.refusal(self.client_address[0], self.headers.get("Host"))
                    if status is None:
                        status, body = query.answer(self.path)
                except Exception as exc:  # a bug answers 500 with its reason, not a dropped connection
                    log.exception("OSCQuery %s failed", self.path)
                    status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}
                self.send_response(status)
                if body is not None:
                    data = body if isinstance(body, bytes) else json.dumps(body).encode()
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                else:
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def _refuse(self) -> None:
                self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, "OSCQuery answers GET only")

            do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        self.state, self.osc_address, self.admitted = state, osc_address, admitted
        self._refused: set[str] = set()  # clients whose refusal is logged already (a flood logs once)
        self._cache: tuple[str, dict[str, Any], bytes] = ("", {}, b"")  # state as JSON → tree, its bytes
        self._cache_lock = threading.Lock()
        self.httpd = _BoundedHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.address: tuple[str, int] = self.httpd.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="wavestack-oscquery",
                                        daemon=True)

    def start(self) -> None:
        """Serve on a daemon thread."""
        self._thread.start()
        log.info("OSCQuery on http://%s:%d/", *self.address)

    def shutdown(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():  # shutdown() waits forever for a loop that never started
            self.httpd.shutdown()
        self.httpd.server_close()

    def tree(self) -> tuple[dict[str, Any], bytes]:
        """The namespace and its JSON bytes, built again only when the session has changed (a large
        session's tree is megabytes: building it for every GET would starve the OSC thread)."""
        state = self.state()  # a copy already
        key = json.dumps(state, sort_keys=True)
        with self._cache_lock:
            if key != self._cache[0]:
                root = namespace(state)
                self._cache = (key, root, json.dumps(root).encode())
            return self._cache[1], self._cache[2]

    def refusal(self, client: str, host_header: str | None) -> tuple[int | None, Any]:
        """403 and why for a client the OSC server would not hear, or a request addressed to a name
        that is not this machine's; (None, None) for a request to answer."""
        if not self.admitted(client):
            why = f"{client} is not allowed (serve --allow {client})"
        elif not addressed_to_this_machine(host_header):
            why = (f"request for host {host_header[:100]!r}, not a name of this machine (a web page's "
                   "DNS rebinding is refused this way); ask by address (127.0.0.1) or this machine's name")
        else:
            return None, None
        if client not in self._refused and len(self._refused) < 1024:
            self._refused.add(client)
            log.warning("OSCQuery: refused %s: %s", client, why)
        return HTTPStatus.FORBIDDEN, {"error": why}

    def answer(self, raw: str) -> tuple[int, Any]:
        """Status and JSON body for one GET request."""
        url = urlsplit(raw)
        attribute = unquote(url.query)
        if attribute == "HOST_INFO":
            return HTTPStatus.OK, host_info(*self.osc_address)
        root, encoded = self.tree()
        if url.path in ("", "/") and not attribute:
            return HTTPStatus.OK, encoded
        node = find(root, unquote(url.path))
        if node is None:
            return HTTPStatus.NOT_FOUND, {"error": f"no OSC node at {unquote(url.path)}"}
        if not attribute:
            return HTTPStatus.OK, node
        if attribute not in ATTRIBUTES:
            return HTTPStatus.BAD_REQUEST, {"error": f"unknown attribute {attribute}; "
                                                     f"known: HOST_INFO, {', '.join(ATTRIBUTES)}"}
        if attribute not in node:
            return HTTPStatus.NO_CONTENT, None
        return HTTPStatus.OK, {attribute: node[attribute]}
