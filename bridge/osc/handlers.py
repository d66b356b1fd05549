"""What each address does to the session, given its validated arguments and a ``reply`` callable.

Addresses whose arguments name the attribute they set (``Arg.field`` in the table) share one
setter; the others have a handler here, named after the address (``/track/add`` → ``track_add``).
A handler returns True when it answered itself; otherwise the dispatcher acknowledges it. Checks
that load something (a model's manifest, a plugin, a file) run before the session lock is taken,
and nothing here runs on the receive thread (see ``bridge.osc.dispatch``).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.osc.follow import MEASURABLE, Follower, Transport, measured_text
from bridge.osc.jobs import Job, JobQueue
from bridge.protocol import MIX, PREFIX, Address, ProtocolError
from bridge.render.checks import check_model, check_session, checked
from bridge.render.project import SESSION_FILE, Claim, Project, ProjectError
from bridge.render.takes import keep, listed, trash
from bridge.session import MAX_TRACKS, Session, Track, assign, check, check_track_name

log = logging.getLogger("wavestack.server")
SAVE_DELAY = 0.2  # seconds an edit waits to be saved with the ones after it (a burst: one write)
TAKES_LISTED = 50  # newest takes answered by /track/takes (their JSON fits one datagram)
Reply = Callable[..., None]  # reply(path below the prefix, *values): to the requester and subscribers


class Handlers:
    """The session and everything that changes it: tracks, DAW following, jobs, persistence."""

    def __init__(self, jobs: JobQueue, broadcast: Reply, projects_root: Path) -> None:
        import threading

        self.projects_root = projects_root.expanduser().resolve()
        self.session = Session()
        self.jobs = jobs
        self.broadcast = broadcast  # to every subscriber (DAW changes, job events without a requester)
        self.lock = threading.Lock()  # the session: changed here and by the DAW follower, read by OSCQuery
        self.follower: Follower | None = None
        self.requesters: dict[int, Reply] = {}
        self.claim: Claim | None = None  # the project folder this server writes, held against others
        self._unsaved = threading.Condition(self.lock)  # an edit waits to be saved
        self._dirty = self._closed = False
        self._saver = threading.Thread(target=self._save_later, name="wavestack-save", daemon=True)
        self._saver.start()

    def state(self) -> dict[str, Any]:
        """A copy of the session as plain data, safe to read from another thread."""
        with self.lock:
            return json.loads(json.dumps(self.session.to_dict()))

    # ------------------------------------------------------------------ the generic setter
    def set_fields(self, address: Address, args: dict[str, Any]) -> None:
        """Set the attributes ``address``'s arguments name (and clear the ones it replaces)."""
        for arg in address.args:
            if arg.check == "file" and args[arg.name]:
                self.confined(args[arg.name], "audio file")
        values = {arg: checked(arg, args[arg.name]) for arg in address.args if arg.field}
        with self.lock:
            target: Any = self.session.track(args["track"]) if address.group == "track" else self.session
            for arg, value in values.items():
                assign(target, arg.field, value)
            for name in address.clears:
                setattr(target, name, None)
            self.save()

    # ------------------------------------------------------------------ server
    def models(self, args: dict, reply: Reply) -> bool:
        """/wavestack/models: list installed models; answers /wavestack/models <name>…."""
        from engine.catalog import installed_models

        reply("/models", *sorted(installed_models()))
        return True

    def fx_catalog(self, args: dict, reply: Reply) -> bool:
        """/wavestack/fx/catalog: the built-in effects with their parameters, defaults and ranges."""
        from bridge.render.fx import catalog

        reply("/fx/catalog", json.dumps(catalog()))
        return True

    def ping(self, args: dict, reply: Reply) -> bool:
        """/wavestack/ping: check the server is alive; answers /wavestack/pong <version>."""
        reply("/pong", __version__)
        return True

    # ------------------------------------------------------------------ session
    def project(self, args: dict, reply: Reply) -> bool:
        """Open a project folder: the session saved there is loaded, never replaced. A folder with
        no saved session takes the current one (so tracks set up before choosing a folder stay)."""
        root = Project(self.confined(args["folder"], "project folder")).root
        saved = root / SESSION_FILE
        claim = self._claim(root)
        if saved.is_file():
            try:
                session = check_session(Session.from_dict(json.loads(saved.read_text())))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
                self._give_up(claim)
                raise ProjectError(f"{saved} cannot be read ({text(exc)}); it is left as it is: "
                                   "fix or move it, then open the folder again") from None
            with self.lock:
                self.write_session()  # the session being left stays in its own folder, now
                session.project = str(root)
                self.session = session
            said = f"opened {root}: its saved session, {len(session.tracks)} track(s)"
        else:
            with self.lock:
                self.session.project = str(root)
                self.write_session()
                said = f"opened {root}: no saved session there, the current one " \
                       f"({len(self.session.tracks)} track(s)) is saved into it"
        said += self._move_to(claim)
        log.info("%s", said)
        reply("/ack", PREFIX + "/project", said)
        return True

    def _claim(self, root: Path) -> Claim:
        """A claim on ``root``: the one held already, or a new one (ProjectError if another
        wavestack holds it)."""
        if self.claim is not None and self.claim.root == root:
            return self.claim
        return Claim(root)

    def _move_to(self, claim: Claim) -> str:
        """Hold ``claim`` from now on and let go of the one held before. Returns what to add to the
        acknowledgement: the takes an interrupted writer left unrecorded, now set aside."""
        if claim is self.claim:
            return ""
        if self.claim is not None:
            self.claim.release()
        self.claim = claim
        if not claim.set_aside:
            return ""
        names = ", ".join(p.name for p in claim.set_aside)
        log.warning("takes written but never recorded (an interrupted render) moved to %s: %s",
                    claim.set_aside[0].parent, names)
        return f"; {len(claim.set_aside)} take(s) an interrupted render wrote but did not record " \
               f"moved to {claim.set_aside[0].parent.name}/: {names}"

    def _give_up(self, claim: Claim) -> None:
        """Let go of ``claim`` unless it is the one held already (opening its folder failed)."""
        if claim is not self.claim:
            claim.release()

    def state_get(self, args: dict, reply: Reply) -> bool:
        """/wavestack/state/get: the whole session as JSON; answers /wavestack/state <json>."""
        reply("/state", json.dumps(self.state()))
        return True

    def state_set(self, args: dict, reply: Reply) -> None:
        """/wavestack/state/set: replace the whole session with JSON from /state/get (DAW project recall)."""
        try:
            data = json.loads(args["json"])
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"/state/set: not valid JSON: {exc}") from None
        session = Session.from_dict(data)
        for track in session.tracks:
            for path in (track.primer, track.vary):
                if path:
                    self.confined(path, "audio file")
        check_session(session)
        claim = None
        if session.project:
            session.project = str(Project(self.confined(session.project, "project folder")).root)
            claim = self._claim(Path(session.project))
        with self.lock:
            if not session.project:
                session.project = self.session.project  # state without a folder keeps the current one
            self.session = session
            self.save()
        if claim is not None:
            self._move_to(claim)

    def confined(self, path: str, what: str) -> Path:
        """``path`` resolved (symlinks too), if it lies inside the projects root; else ProjectError."""
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_relative_to(self.projects_root):
            raise ProjectError(f"{what} {path} is outside the projects root {self.projects_root} "
                               "(wavestack serve --projects-root DIR sets it)")
        return resolved

    # ------------------------------------------------------------------ tracks
    def track_add(self, args: dict, reply: Reply) -> None:
        """/wavestack/track/add: add a track, with the sampling its model was measured with."""
        from bridge.render.generate import sampling_of

        name = check_track_name(args["track"])
        model = check_model(args["model"])
        with self.lock:
            if any(t.name == name for t in self.session.tracks):
                raise ProtocolError(f"a track named {name!r} exists already")
            if len(self.session.tracks) >= MAX_TRACKS:
                raise ProtocolError(f"the session has {MAX_TRACKS} tracks, the most it holds; "
                                    "remove one first")
            # the sampling the model was measured with (its bundle says; 1 and 1 if it does not)
            self.session.tracks.append(Track(name=name, model=model, **sampling_of(model)))
            self.save()

    def track_remove(self, args: dict, reply: Reply) -> None:
        """/wavestack/track/remove: remove a track."""
        with self.lock:
            self.session.tracks.remove(self.session.track(args["track"]))
            self.save()

    def track_list(self, args: dict, reply: Reply) -> bool:
        """/wavestack/track/list: list tracks; answers /wavestack/tracks <name>…."""
        reply("/tracks", *[t.name for t in self.session.tracks])
        return True

    def track_rename(self, args: dict, reply: Reply) -> None:
        """/wavestack/track/rename: rename a track (takes already rendered keep their file names)."""
        name = check_track_name(args["new_name"])
        with self.lock:
            track = self.session.track(args["track"])
            if name != track.name and any(t.name == name for t in self.session.tracks):
                raise ProtocolError(f"a track named {name!r} exists already")
            track.name = name
            self.save()

    def track_takes(self, args: dict, reply: Reply) -> bool:
        """/wavestack/track/takes: the track's rendered takes, newest first (at most 50)."""
        name = self._takes_of(args["track"])
        takes = listed(Project(self.session.project), name)
        reply("/takes", name, json.dumps(takes[:TAKES_LISTED]))
        return True

    def _takes_of(self, track: str) -> str:
        """Whose takes: a track's, or the session's mixes (``(mix)``)."""
        return MIX if track == MIX else self.session.track(track).name

    def take_keep(self, args: dict, reply: Reply) -> None:
        """/wavestack/take/keep: mark a take as a keeper, or not."""
        with self.lock:
            name = self._takes_of(args["track"])
            keep(Project(self.session.project), name, args["take"], bool(args["keeper"]),
                 self.session.tempo, tuple(self.session.meter))

    def take_delete(self, args: dict, reply: Reply) -> None:
        """/wavestack/take/delete: move a take to Audio/.trash, recorded in the manifest."""
        with self.lock:
            name = self._takes_of(args["track"])
            trash(Project(self.session.project), name, args["take"], self.session.tempo,
                  tuple(self.session.meter))

    def track_at_playhead(self, args: dict, reply: Reply) -> None:
        """/wavestack/track/at_playhead: place the track at the followed DAW's playhead (see /follow)."""
        t = self.follower.transport if self.follower is not None else None
        if t is None or t.position is None:
            raise ProtocolError("no DAW playhead known yet: choose your DAW under Follow DAW (or send "
                                "/wavestack/follow/set reaper|ardour|ableton), then start or move its "
                                "transport")
        with self.lock:
            track = self.session.track(args["track"])
            track.position, track.at_bar = max(0.0, round(t.position, 6)), None
            self.save()

    # ------------------------------------------------------------------ DAW
    def follow_set(self, args: dict, reply: Reply) -> None:
        """/wavestack/follow/set: follow a DAW's tempo, meter and transport ('none' stops following)."""
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

    def follow_status(self, args: dict, reply: Reply) -> bool:
        """/wavestack/follow/status: what the followed DAW last said; answers /wavestack/follow …."""
        reply("/follow", *self.following())
        return True

    def following(self) -> list[Any]:
        """The /follow reply's values."""
        if self.follower is None:
            return ["none", "off", float(self.session.tempo), *self.session.meter, 0, -1.0, -1.0, ""]
        t = self.follower.transport
        heard = -1.0 if t.heard is None else round(time.monotonic() - t.heard, 3)
        return [t.daw, self.follower.state(), float(self.session.tempo), *self.session.meter, int(t.playing),
                -1.0 if t.position is None else float(t.position), heard, measured_text(t.measured)]

    def _on_daw(self, t: Transport, changed: set[str]) -> None:
        """The followed DAW said something new: tempo and meter go to the session; subscribers hear of it."""
        if self.follower is None or t is not self.follower.transport:
            return  # a follower stopped a moment ago
        with self.lock:
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
                self.save()
        if changed - {"position"}:  # the playhead moves many times a second: asked for, not pushed
            self.broadcast("/follow", *self.following())

    def _tempo_source(self) -> dict[str, Any]:
        """What the manifest says about where the tempo came from."""
        if self.follower is None:
            return {}
        measured = sorted(self.follower.transport.measured)
        source = {"daw": self.follower.daw, "state": self.follower.state(), "measured": measured,
                  "session": [n for n in MEASURABLE if n not in measured]}
        return {"tempo_source": source}

    # ------------------------------------------------------------------ jobs
    def generate(self, args: dict, reply: Reply) -> bool:
        """/wavestack/generate: render one track; answers ack <job>, progress, done <job> <stem> or error."""
        from bridge.render.stems import check_renderable, render_track

        with self.lock:
            session = copy.deepcopy(self.session)  # later edits do not change a queued render
        track = session.track(args["track"])
        project = Project(session.project)
        check_renderable(session, track)
        extra = self._tempo_source()

        def work(progress: Any, should_cancel: Any) -> list[Path]:
            rendered = render_track(session, track, project, progress=progress, should_cancel=should_cancel,
                                    manifest_extra=extra)
            reply("/seed", track.name, rendered.seed)
            return [rendered.path]

        self._submit(PREFIX + "/generate", work, reply)
        return True

    def generate_all(self, args: dict, reply: Reply) -> bool:
        """/wavestack/generate_all: render every track and the mix."""
        from bridge.render.fx import parse_chain
        from bridge.render.stems import check_mix, check_renderable, mix, render_tracks

        with self.lock:
            session = copy.deepcopy(self.session)
        if not session.tracks:
            raise ProtocolError("no tracks to render: add one with /wavestack/track/add <name>")
        project = Project(session.project)
        for track in session.tracks:
            check_renderable(session, track)
        check_mix(session, session.tracks)
        parse_chain(session.master_fx)  # checked before any audio is generated
        extra = self._tempo_source()

        def work(progress: Any, should_cancel: Any) -> list[Path]:
            n = len(session.tracks)  # tracks that can share a pass are generated as its rows
            stems = render_tracks(session, session.tracks, project,
                                  progress=lambda f: progress(f * n / (n + 1)), should_cancel=should_cancel,
                                  manifest_extra=extra)
            for rendered in stems:
                reply("/seed", rendered.track, rendered.seed)
            return [s.path for s in stems] + [mix(session, project, stems).path]

        self._submit(PREFIX + "/generate_all", work, reply)
        return True

    def job_status(self, args: dict, reply: Reply) -> bool:
        """/wavestack/job/status: answers /wavestack/status <job> <state> <fraction> <phase>."""
        job = self.jobs.get(args["job"])
        reply("/status", job.id, job.state, float(job.fraction), job.phase)
        return True

    def job_cancel(self, args: dict, reply: Reply) -> None:
        """/wavestack/job/cancel: cancel a queued or running job; nothing partial is written."""
        self.jobs.cancel(args["job"])

    def _submit(self, address: str, work: Any, reply: Reply) -> Job:
        job = self.jobs.create(lambda progress, should_cancel: work(phased(progress), should_cancel))
        self.requesters[job.id] = reply
        reply("/ack", address, job.id)  # before any progress of the job
        return self.jobs.start(job)

    # ------------------------------------------------------------------ persistence
    def save(self) -> None:
        """Keep the session in the project folder (so `wavestack render` can render it later): soon,
        once a burst of edits is over — call with the lock held."""
        self._dirty = True
        self._unsaved.notify()

    def write_session(self) -> None:
        """Write the session now (the lock held); a failure is logged and told to every subscriber."""
        self._dirty = False
        if not self.session.project:
            return
        from engine.wavfile import atomic_output

        path = Path(self.session.project) / SESSION_FILE
        try:
            with atomic_output(path) as fh:
                fh.write((json.dumps(self.session.to_dict(), indent=1) + "\n").encode())
        except OSError as exc:
            text = f"the session could not be saved to {path} ({exc.strerror or exc}); edits are kept " \
                   "until the server stops: free space or choose another project folder"
            log.warning("%s", text)
            self.broadcast("/error", PREFIX + "/project", text)

    def close(self) -> None:
        """Save what is unsaved and stop the saver."""
        with self.lock:
            if self._dirty:
                self.write_session()
            self._closed = True
            self._unsaved.notify()
        self._saver.join(5)
        if self.claim is not None:
            self.claim.release()

    def _save_later(self) -> None:
        with self.lock:
            while not self._closed:
                if not self._dirty:
                    self._unsaved.wait()
                    continue
                deadline = time.monotonic() + SAVE_DELAY  # the rest of the burst joins this save
                while not self._closed and (left := deadline - time.monotonic()) > 0:
                    self._unsaved.wait(left)
                if self._dirty:
                    self.write_session()


PREPARING = "preparing the fast sampler (once per installation, about a minute)"


def phased(progress: Any) -> Any:
    """A job's progress for the engine: on a first run, the job says it prepares the fast sampler
    until the first audio is made."""
    from engine.fastpath import will_compile

    if not will_compile():
        return progress
    progress(0.0, PREPARING)
    return lambda fraction: progress(fraction, "" if fraction > 0 else None)


def text(exc: BaseException) -> str:
    """An exception as the one line an error reply carries."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__
