"""``wavestack serve``: the OSC server over UDP on loopback.

The receive thread only parses, validates and answers; renders run on the job queue, so ``ping``
answers at once while a render runs. Every request that can fail is answered: ``ack``, ``error``,
or a reply of its own (see ``bridge.protocol``). Replies go to the sender's address and to every
subscribed port (Max and Pd cannot listen on the port they send from). Malformed datagrams are
counted, logged and answered; they never stop the server.
"""

from __future__ import annotations

import copy
import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge import __version__
from bridge.osc import wire
from bridge.osc.follow import Follower, Transport
from bridge.osc.jobs import Job, JobQueue
from bridge.protocol import BY_PATH, PREFIX, ProtocolError
from bridge.render.fx import FxError, catalog, parse_chain
from bridge.render.project import Project, ProjectError
from bridge.render.stems import check_track, mix, render_track, render_tracks
from bridge.session import Session, Track, check, check_track_name

log = logging.getLogger("wavestack.server")
MAX_DATAGRAM = 65535
MAX_REPLY = 65507  # the largest UDP payload over IPv4
RECEIVE_BUFFER = 8 << 20  # bytes asked of the kernel: a burst of thousands of messages fits
HEARTBEAT = 0.4  # seconds between progress replies of a running job, at most
SESSION_FILE = "wavestack-session.json"
TAKES_LISTED = 50  # newest takes answered by /track/takes (their JSON fits one datagram)
Addr = tuple[str, int]
QUERIES = {PREFIX + p for p in ("/ping", "/state/get", "/track/takes", "/track/list", "/models",
                                "/fx/catalog", "/job/status", "/subscribe", "/follow/status")}  # debug level


class Server:
    def __init__(self, host: str = "127.0.0.1", port: int = 9000, project: str | None = None, *,
                 oscquery_port: int | None = None) -> None:
        self.session = Session()
        self.subscribers: set[Addr] = set()
        self.stats = {"received": 0, "malformed": 0, "errors": 0}
        self._requesters: dict[int, Addr] = {}
        self._last_progress: dict[int, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the session: changed on the receive thread, read by OSCQuery
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.address: Addr = self.sock.getsockname()
        self.jobs = JobQueue(self._on_job)
        if project:
            self.on_project({"folder": project}, None)
        self.follower: Follower | None = None
        self.oscquery = None
        if oscquery_port is not None:
            from bridge.osc.oscquery import OscQueryServer

            try:
                self.oscquery = OscQueryServer(self.state, self.address, host, oscquery_port)
            except OSError:
                self.sock.close()
                raise

    def state(self) -> dict[str, Any]:
        """A copy of the session as plain data, safe to read from another thread."""
        with self._lock:
            return json.loads(json.dumps(self.session.to_dict()))

    # ------------------------------------------------------------------ loop
    def serve_forever(self) -> None:
        log.info("listening on udp://%s:%d (OSC, prefix %s)", *self.address, PREFIX)
        if self.oscquery is not None:
            self.oscquery.start()
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                data = None
            except OSError:
                if self._stop.is_set():
                    break
                raise
            if data is not None:
                self.handle(data, addr)
            self._heartbeat()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="wavestack-osc", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        """Cancel queued and running jobs (nothing partial is written), then close the socket."""
        self._stop.set()
        self.jobs.stop()
        if self.follower is not None:
            self.follower.stop()
        self.sock.close()
        if self.oscquery is not None:
            self.oscquery.shutdown()

    # ------------------------------------------------------------------ receive
    def handle(self, data: bytes, addr: Addr) -> None:
        self.stats["received"] += 1
        try:
            messages, tags = wire.parse(data)
        except Exception as exc:  # python-osc raises several kinds on garbage
            self.stats["malformed"] += 1
            log.warning("malformed packet (%d bytes) from %s:%d: %s", len(data), *addr, exc)
            self.send("/error", PREFIX, f"malformed OSC packet ({len(data)} bytes): {exc}", to=addr)
            return
        for message, typetags in zip(messages, tags, strict=False):
            self.dispatch(message.address, _decimal_floats(list(message.params), typetags), addr)

    def dispatch(self, address: str, values: list[Any], addr: Addr | None) -> None:
        level = logging.DEBUG if address in QUERIES else logging.INFO  # a window polls these
        log.log(level, "%s %s from %s", address, _short(values), f"{addr[0]}:{addr[1]}" if addr else "-")
        spec = BY_PATH.get(address)
        try:
            if spec is None:
                raise ProtocolError(f"unknown address {address}; every address starts with {PREFIX}/ "
                                    "(see the protocol reference in the README)")
            args = spec.parse(values)
            handler = getattr(self, "on_" + spec.path.strip("/").replace("/", "_"))
            with self._lock:
                reply = handler(args, addr)
        except (ProtocolError, FxError, ProjectError, FileNotFoundError, KeyError, ValueError) as exc:
            self._fail(address, _text(exc), addr)
            return
        except Exception as exc:
            from engine.errors import EngineError

            if not isinstance(exc, EngineError):
                log.exception("%s failed", address)
            self._fail(address, _text(exc), addr)
            return
        if reply is None:
            self.send("/ack", address, to=addr)

    def _fail(self, where: str | int, message: str, addr: Addr | None) -> None:
        self.stats["errors"] += 1
        log.info("error %s: %s", where, message)
        self.send("/error", where, message, to=addr)

    # ------------------------------------------------------------------ send
    def send(self, path: str, *args: Any, to: Addr | None = None) -> None:
        builder = OscMessageBuilder(address=PREFIX + path)
        for arg in args:
            builder.add_arg(str(arg) if isinstance(arg, Path) else arg)
        dgram = builder.build().dgram
        if len(dgram) > MAX_REPLY:
            text = f"reply {PREFIX + path} is {len(dgram)} bytes, more than one UDP datagram holds"
            builder = OscMessageBuilder(address=PREFIX + "/error")
            builder.add_arg(PREFIX + path)
            builder.add_arg(text)
            dgram = builder.build().dgram
        targets = set(self.subscribers)
        if to is not None:
            targets.add(to)
        for target in targets:
            try:
                self.sock.sendto(dgram, target)
            except OSError as exc:  # an unreachable subscriber must not break the server
                log.debug("cannot send to %s: %s", target, exc)

    # ------------------------------------------------------------------ jobs
    def _on_job(self, job: Job, event: str) -> None:
        to = self._requesters.get(job.id)
        if event == "progress" or job.state == "running":
            now = time.monotonic()
            if event == "state" or now - self._last_progress.get(job.id, 0.0) >= 0.1:
                self._last_progress[job.id] = now
                self.send("/progress", job.id, float(job.fraction), to=to)
        elif job.state == "done":
            self.send("/done", job.id, *[str(p) for p in job.paths], to=to)
        elif job.state == "failed":
            self.send("/error", job.id, job.error, to=to)
        elif job.state == "cancelled":
            self.send("/error", job.id, f"job {job.id} cancelled; nothing was written", to=to)

    def _heartbeat(self) -> None:
        job = self.jobs.current
        if job is not None and time.monotonic() - self._last_progress.get(job.id, 0.0) >= HEARTBEAT:
            self._on_job(job, "progress")

    def _submit(self, address: str, work: Any, addr: Addr | None) -> Job:
        job = self.jobs.create(address, work)
        if addr is not None:
            self._requesters[job.id] = addr
        self.send("/ack", address, job.id, to=addr)  # before any progress of the job
        return self.jobs.start(job)

    # ------------------------------------------------------------------ handlers: server
    def on_ping(self, args: dict, addr: Addr | None) -> bool:
        self.send("/pong", __version__, to=addr)
        return True

    def on_subscribe(self, args: dict, addr: Addr | None) -> None:
        host = args["host"]
        if host not in ("127.0.0.1", "localhost") and (addr is None or host != addr[0]):
            raise ProtocolError("subscribe: replies go to loopback or to the sender's own host only")
        self.subscribers.add((socket.gethostbyname(host), args["port"]))

    def on_unsubscribe(self, args: dict, addr: Addr | None) -> None:
        self.subscribers.discard((socket.gethostbyname(args["host"]), args["port"]))

    def on_models(self, args: dict, addr: Addr | None) -> bool:
        from engine.catalog import installed_models

        self.send("/models", *sorted(installed_models()), to=addr)
        return True

    def on_fx_catalog(self, args: dict, addr: Addr | None) -> bool:
        self.send("/fx/catalog", json.dumps(catalog()), to=addr)
        return True

    # ------------------------------------------------------------------ handlers: session
    def on_project(self, args: dict, addr: Addr | None) -> bool:
        """Open a project folder: the session saved there is loaded, never replaced. A folder with
        no saved session takes the current one (so tracks set up before choosing a folder stay)."""
        root = Project(args["folder"]).root
        saved = root / SESSION_FILE
        if saved.is_file():
            try:
                session = Session.from_dict(json.loads(saved.read_text()))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, ProtocolError) as exc:
                raise ProjectError(f"{saved} cannot be read ({_text(exc)}); it is left as it is: "
                                   "fix or move it, then open the folder again") from None
            self._save()  # the session being left stays in its own folder
            session.project = str(root)
            self.session = session
            said = f"opened {root}: its saved session, {len(session.tracks)} track(s)"
        else:
            self.session.project = str(root)
            self._save()
            said = f"opened {root}: no saved session there, the current one ({len(self.session.tracks)} " \
                   "track(s)) is saved into it"
        log.info("%s", said)
        self.send("/ack", PREFIX + "/project", said, to=addr)
        return True

    def on_tempo(self, args: dict, addr: Addr | None) -> None:
        self.session.tempo = args["bpm"]
        self._save()

    def on_meter(self, args: dict, addr: Addr | None) -> None:
        self.session.meter = (args["numerator"], args["denominator"])
        self._save()

    def on_rate(self, args: dict, addr: Addr | None) -> None:
        self.session.sample_rate = args["hz"]
        self._save()

    def on_depth(self, args: dict, addr: Addr | None) -> None:
        self.session.bit_depth = args["bits"]
        self._save()

    def on_master_fx(self, args: dict, addr: Addr | None) -> None:
        self.session.master_fx = parse_chain(args["chain"])
        self._save()

    def on_state_get(self, args: dict, addr: Addr | None) -> bool:
        self.send("/state", json.dumps(self.session.to_dict()), to=addr)
        return True

    def on_state_set(self, args: dict, addr: Addr | None) -> None:
        try:
            data = json.loads(args["json"])
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"/state/set: not valid JSON: {exc}") from None
        session = Session.from_dict(data)
        if session.project:
            session.project = str(Project(session.project).root)
        else:
            session.project = self.session.project  # state without a folder keeps the current one
        self.session = session
        self._save()

    # ------------------------------------------------------------------ handlers: tracks
    def on_track_add(self, args: dict, addr: Addr | None) -> None:
        from engine.catalog import resolve

        name = check_track_name(args["track"])
        if any(t.name == name for t in self.session.tracks):
            raise ProtocolError(f"a track named {name!r} exists already")
        resolve(args["model"])  # unknown models are refused here, not at render time
        self.session.tracks.append(Track(name=name, model=args["model"]))
        self._save()

    def on_track_remove(self, args: dict, addr: Addr | None) -> None:
        self.session.tracks.remove(self.session.track(args["track"]))
        self._save()

    def on_track_list(self, args: dict, addr: Addr | None) -> bool:
        self.send("/tracks", *[t.name for t in self.session.tracks], to=addr)
        return True

    def on_track_rename(self, args: dict, addr: Addr | None) -> None:
        track = self.session.track(args["track"])
        name = check_track_name(args["new_name"])
        if name != track.name and any(t.name == name for t in self.session.tracks):
            raise ProtocolError(f"a track named {name!r} exists already")
        track.name = name
        self._save()

    def on_track_takes(self, args: dict, addr: Addr | None) -> bool:
        name = self.session.track(args["track"]).name
        project = Project(self.session.project)
        takes = []
        for render in reversed(project.read_manifest()["renders"]):
            if render.get("kind") != "track" or render.get("track") != name:
                continue
            for f in render.get("files", []):
                takes.append({"path": str(project.root / f["path"]), "take": f["take"],
                              "seed": render["seed"],
                              "seconds": f["seconds"], "position_seconds": f["position_seconds"],
                              "model": render["model"], "finished": render.get("finished", "")})
        self.send("/takes", name, json.dumps(takes[:TAKES_LISTED]), to=addr)
        return True

    def _set(self, args: dict, **values: Any) -> None:
        track = self.session.track(args["track"])
        for key, value in values.items():
            setattr(track, key, value)
        self._save()

    def on_track_model(self, args: dict, addr: Addr | None) -> None:
        from engine.catalog import resolve

        resolve(args["model"])
        self._set(args, model=args["model"])

    def on_track_seconds(self, args: dict, addr: Addr | None) -> None:
        self._set(args, seconds=args["seconds"], bars=None)

    def on_track_bars(self, args: dict, addr: Addr | None) -> None:
        self._set(args, bars=args["bars"], seconds=None)

    def on_track_position(self, args: dict, addr: Addr | None) -> None:
        self._set(args, position=args["seconds"], at_bar=None)

    def on_track_at_playhead(self, args: dict, addr: Addr | None) -> None:
        t = self.follower.transport if self.follower is not None else None
        if t is None or t.position is None:
            raise ProtocolError("no DAW playhead known: follow a DAW first (/wavestack/follow reaper|ardour|"
                                "ableton) and start or move its transport")
        self._set(args, position=max(0.0, round(t.position, 6)), at_bar=None)

    def on_track_at_bar(self, args: dict, addr: Addr | None) -> None:
        self._set(args, at_bar=args["bar"])

    def on_track_seed(self, args: dict, addr: Addr | None) -> None:
        self._set(args, seed=args["seed"])

    def on_track_temperature(self, args: dict, addr: Addr | None) -> None:
        self._set(args, temperature=args["temperature"])

    def on_track_top_p(self, args: dict, addr: Addr | None) -> None:
        self._set(args, top_p=args["top_p"])

    def on_track_gain(self, args: dict, addr: Addr | None) -> None:
        self._set(args, gain_db=args["db"])

    def on_track_fx(self, args: dict, addr: Addr | None) -> None:
        self._set(args, fx=parse_chain(args["chain"]))

    def on_track_primer(self, args: dict, addr: Addr | None) -> None:
        _check_file(args["path"])
        self._set(args, primer=args["path"])

    def on_track_vary(self, args: dict, addr: Addr | None) -> None:
        _check_file(args["path"])
        self._set(args, vary=args["path"], vary_level=args["level"])

    # ------------------------------------------------------------------ handlers: DAW
    def on_follow(self, args: dict, addr: Addr | None) -> None:
        if self.follower is not None:
            self.follower.stop()
            self.follower = None
        if args["daw"] == "none":
            return
        try:
            follower = Follower(args["daw"], self._on_daw, listen_port=args["listen_port"] or None,
                                send_port=args["send_port"] or None)
        except OSError as exc:
            port = args["listen_port"] or "default"
            raise ProtocolError(f"cannot listen for {args['daw']} on udp port {port}: {exc.strerror}; "
                                "give another listen_port") from None
        self.follower = follower  # before it starts: its first answer must find it in place
        follower.start()

    def on_follow_status(self, args: dict, addr: Addr | None) -> bool:
        self.send("/follow", *self.follow_status(), to=addr)
        return True

    def follow_status(self) -> list[Any]:
        if self.follower is None:
            return ["none", "off", float(self.session.tempo), *self.session.meter, 0, -1.0, -1.0]
        t = self.follower.transport
        heard = -1.0 if t.heard is None else round(time.monotonic() - t.heard, 3)
        return [t.daw, self.follower.state(), float(self.session.tempo), *self.session.meter, int(t.playing),
                -1.0 if t.position is None else float(t.position), heard]

    def _on_daw(self, t: Transport, changed: set[str]) -> None:
        """The followed DAW said something new: tempo and meter go to the session; subscribers hear of it."""
        if self.follower is None or t is not self.follower.transport:
            return  # a follower stopped a moment ago
        with self._lock:
            before = (self.session.tempo, self.session.meter)
            if "tempo" in changed and t.tempo is not None:
                try:
                    self.session.tempo = check("/tempo", "bpm", t.tempo)
                except ProtocolError as exc:
                    log.warning("%s tempo ignored: %s", t.daw, exc)
            if changed & {"numerator", "denominator"}:
                try:
                    numerator = t.numerator or self.session.meter[0]
                    denominator = t.denominator or self.session.meter[1]
                    self.session.meter = (check("/meter", "numerator", numerator),
                                          check("/meter", "denominator", denominator))
                except ProtocolError as exc:
                    log.warning("%s meter ignored: %s", t.daw, exc)
            if (self.session.tempo, self.session.meter) != before:
                log.info("following %s: %g BPM, %d/%d", t.daw, self.session.tempo, *self.session.meter)
                self._save()
        if changed - {"position"}:  # the playhead moves many times a second: asked for, not pushed
            self.send("/follow", *self.follow_status())

    def _follow_record(self) -> dict[str, Any]:
        """What the manifest says about where the tempo came from."""
        if self.follower is None:
            return {}
        return {"tempo_source": {"daw": self.follower.daw, "state": self.follower.state()}}

    # ------------------------------------------------------------------ handlers: jobs
    def on_generate(self, args: dict, addr: Addr | None) -> bool:
        session = copy.deepcopy(self.session)  # later edits do not change a queued render
        track = session.track(args["track"])
        project = Project(session.project)
        check_track(session, track)
        record = self._follow_record()

        def work(progress: Any, should_cancel: Any) -> list[Path]:
            rendered = render_track(session, track, project, progress=progress,
                                    should_cancel=should_cancel, record=record)
            self.send("/seed", track.name, rendered.seed, to=addr)
            return [rendered.path]

        self._submit(PREFIX + "/generate", work, addr)
        return True

    def on_generate_all(self, args: dict, addr: Addr | None) -> bool:
        session = copy.deepcopy(self.session)
        if not session.tracks:
            raise ProtocolError("no tracks to render: add one with /wavestack/track/add <name>")
        project = Project(session.project)
        for track in session.tracks:
            check_track(session, track)
        parse_chain(session.master_fx)  # checked before any audio is generated
        record = self._follow_record()

        def work(progress: Any, should_cancel: Any) -> list[Path]:
            n = len(session.tracks)  # tracks that can share a pass are generated as its rows
            stems = render_tracks(session, session.tracks, project,
                                  progress=lambda f: progress(f * n / (n + 1)), should_cancel=should_cancel,
                                  record=record)
            for rendered in stems:
                self.send("/seed", rendered.track, rendered.seed, to=addr)
            return [s.path for s in stems] + [mix(session, project, stems).path]

        self._submit(PREFIX + "/generate_all", work, addr)
        return True

    def on_job_status(self, args: dict, addr: Addr | None) -> bool:
        job = self.jobs.get(args["job"])
        self.send("/status", job.id, job.state, float(job.fraction), to=addr)
        return True

    def on_job_cancel(self, args: dict, addr: Addr | None) -> None:
        self.jobs.cancel(args["job"])

    # ------------------------------------------------------------------ persistence
    def _save(self) -> None:
        """Keep the session in the project folder, so `wavestack render` can render it later."""
        if not self.session.project:
            return
        from engine.wavfile import atomic_output

        try:
            with atomic_output(Path(self.session.project) / SESSION_FILE) as fh:
                fh.write((json.dumps(self.session.to_dict(), indent=1) + "\n").encode())
        except OSError as exc:
            log.warning("cannot save the session: %s", exc)


def _decimal_floats(values: list[Any], typetags: str) -> list[Any]:
    """32-bit OSC floats as the shortest decimal that is the same float32: a client that sends 0.3
    gets 0.3 in the session and the manifest, not 0.30000001192092896."""
    if len(values) != len(typetags):  # arrays: left as they are
        return values
    return [float(str(np.float32(v))) if tag == "f" else v for v, tag in zip(values, typetags, strict=False)]


def _check_file(path: str) -> None:
    if path and not Path(path).is_file():
        raise FileNotFoundError(f"audio file not found: {path}")


def _text(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def _short(values: list[Any]) -> str:
    text = " ".join(map(repr, values))
    return text if len(text) <= 200 else text[:200] + "…"
