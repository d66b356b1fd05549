"""The OSC protocol of ``wavestack serve``: one table of addresses, pure data (no torch, no engine).

The table drives the server's dispatch and validation, the README's protocol reference
(``python -m bridge.protocol`` prints it), the control window and OSCQuery. Every address lives
under ``/wavestack``. Max and Pure Data send floats where ints are meant: an int argument accepts
a float that is a whole number and refuses any other, naming the argument and what is allowed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

PREFIX = "/wavestack"
TRACK_NAME_HELP = "track name: letters, digits, space, '_', '-', '.', at most 64 characters"


class ProtocolError(ValueError):
    """A message that does not match its address's arguments; the text says what is allowed."""


@dataclass(frozen=True)
class Arg:
    """One argument of an address: OSC type, range or choices, default, the attribute it sets."""
    name: str
    type: str  # "i" int, "f" float, "s" string (OSC type tags)
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] = ()
    default: Any = None  # not None: the argument may be left out
    field: str = ""  # the session attribute it sets (a track's, under /track); "meter.0": an item of one
    json: bool = False  # the attribute holds the JSON the argument's text encodes
    check: str = ""  # a check beyond type and range, run off the receive thread: model, fx, file

    def allowed(self) -> str:
        """What the argument accepts, in words."""
        kind = {"i": "an integer", "f": "a number", "s": "a string"}[self.type]
        if self.choices:
            return f"one of {', '.join(map(str, self.choices))}"
        if self.min is not None and self.max is not None:
            return f"{kind} in [{_num(self.min)}, {_num(self.max)}]"
        if self.min is not None:
            return f"{kind} ≥ {_num(self.min)}"
        return kind

    def convert(self, value: Any, address: str, where: str | None = None) -> Any:
        """``value`` as this argument takes it, or a ProtocolError saying what is allowed; ``where``
        names it in the message (default: the address and the argument's name)."""
        where = where or f"{address}: argument '{self.name}'"
        if self.type == "s":
            if not isinstance(value, str):
                raise ProtocolError(f"{where} must be a string, got {value!r}")
            out: Any = value
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"{where} must be {self.allowed()}, got {value!r}")
        elif self.type == "i":
            if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
                raise ProtocolError(f"{where} must be {self.allowed()}, got {value!r}")
            out = int(value)
        else:
            if not math.isfinite(value):
                raise ProtocolError(f"{where} must be {self.allowed()}, got {value!r}")
            out = float(value)
        if self.choices and out not in self.choices:
            raise ProtocolError(f"{where} must be {self.allowed()}, got {value!r}")
        if (self.min is not None and out < self.min) or (self.max is not None and out > self.max):
            raise ProtocolError(f"{where} must be {self.allowed()}, got {value!r}")
        return out


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class Address:
    """One OSC address: its arguments, help, what it answers, what it clears."""
    path: str  # below PREFIX, e.g. "/track/seed"
    help: str
    args: tuple[Arg, ...] = ()
    reply: str = "ack"  # what the server answers with (besides error)
    group: str = "session"
    clears: tuple[str, ...] = ()  # attributes it sets to None (a length in bars replaces one in seconds)

    @property
    def full(self) -> str:
        """The address with the prefix."""
        return PREFIX + self.path

    @property
    def typetags(self) -> str:
        """The OSC type tags of all its arguments."""
        return "".join(a.type for a in self.args)

    def parse(self, values: list[Any]) -> dict[str, Any]:
        """Validated, converted arguments by name; defaults fill left-out optional ones."""
        required = sum(1 for a in self.args if a.default is None)
        if not required <= len(values) <= len(self.args):
            want = str(required) if required == len(self.args) else f"{required} to {len(self.args)}"
            names = " ".join(f"<{a.name}>" if a.default is None else f"[{a.name}]" for a in self.args)
            raise ProtocolError(f"{self.full}: expected {want} argument(s) {names}, got {len(values)}")
        out = {}
        for i, arg in enumerate(self.args):
            out[arg.name] = arg.convert(values[i], self.full) if i < len(values) else arg.default
        return out


def _track(*more: Arg) -> tuple[Arg, ...]:
    return (Arg("track", "s", TRACK_NAME_HELP), *more)


SEED_MAX = 2**31 - 1
MIX = "(mix)"  # the session's mixes (generate_all) are the takes of this name: no track can have it
DAWS = ("reaper", "ardour", "ableton")  # what /follow can follow (bridge/follow.py has one adapter each)
FX_HELP = ('effects chain as JSON: a list of {"plugin": "Reverb", "room_size": 0.8} (pedalboard '
           'built-ins) or {"vst3": "/usr/lib/vst3/ZamDelay.vst3", "params": {"time_ms": 250}}')



def _chain(field: str) -> Arg:
    return Arg("chain", "s", FX_HELP, field=field, json=True, check="fx")


TABLE: tuple[Address, ...] = (
    # ---------------------------------------------------------------- connection
    Address("/ping", "check the server is alive; answers /wavestack/pong <version>", reply="pong",
            group="server"),
    Address("/subscribe", "send replies to this UDP port (Max/Pd cannot receive on their sending port)",
            (Arg("port", "i", "UDP port to send replies to", 1, 65535),
             Arg("host", "s", "host to send replies to", default="127.0.0.1")), group="server"),
    Address("/unsubscribe", "stop sending replies to this port",
            (Arg("port", "i", "UDP port", 1, 65535), Arg("host", "s", "host", default="127.0.0.1")),
            group="server"),
    Address("/models", "list installed models; answers /wavestack/models <name>…", reply="models",
            group="server"),
    Address("/fx/catalog", "built-in effects with their parameters, defaults and useful ranges; answers "
            "/wavestack/fx/catalog <json>", reply="fx/catalog", group="server"),
    # ---------------------------------------------------------------- session
    Address("/project", "set the project folder (stems go to <folder>/Audio)",
            (Arg("folder", "s", "project folder path; created if missing", field="project"),)),
    Address("/tempo", "session tempo", (Arg("bpm", "f", "beats per minute", 20, 300, field="tempo"),)),
    Address("/meter", "session time signature",
            (Arg("numerator", "i", "beats per bar", 1, 32, field="meter.0"),
             Arg("denominator", "i", "beat unit", choices=(1, 2, 4, 8, 16), field="meter.1"))),
    Address("/rate", "sample rate of stems and mix",
            (Arg("hz", "i", "sample rate", choices=(44100, 48000, 96000), field="sample_rate"),)),
    Address("/depth", "stem bit depth: 16 or 24-bit PCM, 32 = 32-bit float",
            (Arg("bits", "i", "bit depth", choices=(16, 24, 32), field="bit_depth"),)),
    Address("/master/fx", "effects chain of the mix", (_chain("master_fx"),)),
    Address("/state/get", "the whole session as JSON; answers /wavestack/state <json>", reply="state"),
    Address("/state/set", "replace the whole session with JSON from /state/get (DAW project recall)",
            (Arg("json", "s", "session JSON"),)),
    # ---------------------------------------------------------------- tracks
    Address("/track/add", "add a track", _track(Arg("model", "s", "model name", default="default")),
            group="track"),
    Address("/track/remove", "remove a track", _track(), group="track"),
    Address("/track/list", "list tracks; answers /wavestack/tracks <name>…", reply="tracks", group="track"),
    Address("/track/rename", "rename a track (takes already rendered keep their file names)",
            _track(Arg("new_name", "s", TRACK_NAME_HELP)), group="track"),
    Address("/track/takes", "the track's rendered takes, newest first (at most 50); answers "
            "/wavestack/takes <track> <json>; the track (mix) lists the session's mixes (generate_all), "
            "which /take/keep and /take/delete take too", _track(), reply="takes", group="track"),
    Address("/take/keep", "mark a take as a keeper (1) or not (0); a keeper cannot be deleted",
            _track(Arg("take", "i", "take number", min=1),
                   Arg("keeper", "i", "1: keep it, 0: not a keeper any more", choices=(0, 1), default=1)),
            group="track"),
    Address("/take/delete", "delete a take: its file moves to Audio/.trash and the manifest records it "
            "(nothing is unlinked); its take number is never given again",
            _track(Arg("take", "i", "take number", min=1)), group="track"),
    Address("/track/model", "the model a track renders with",
            _track(Arg("model", "s", "model name", field="model", check="model")), group="track"),
    Address("/track/seconds", "track length in seconds",
            _track(Arg("seconds", "f", "length", 0.05, 600, field="seconds")), group="track",
            clears=("bars",)),
    Address("/track/bars", "track length in bars at the session tempo and meter",
            _track(Arg("bars", "f", "length in bars", 0.25, 256, field="bars")), group="track",
            clears=("seconds",)),
    Address("/track/position", "where the stem starts in the project, in seconds",
            _track(Arg("seconds", "f", "start time", 0, 86400, field="position")), group="track",
            clears=("at_bar",)),
    Address("/track/at_bar", "where the stem starts, as a bar number (bar 1 is the project start)",
            _track(Arg("bar", "f", "bar number", 1, 10000, field="at_bar")), group="track"),
    Address("/track/seed", "the take's seed: the same seed and settings render the same audio; -1 picks "
            "a new one each render and reports it",
            _track(Arg("seed", "i", "seed", -1, SEED_MAX, field="seed")), group="track"),
    Address("/track/temperature", "randomness of the notes: low is steadier and more repetitive, high is "
            "wilder (1 = as trained; a model may render the notes with its own)",
            _track(Arg("temperature", "f", "temperature", 0.05, 2.0, field="temperature")), group="track"),
    Address("/track/top_p", "keep only the likeliest choices at each step: lower is safer and plainer, "
            "1 keeps them all (nucleus sampling)",
            _track(Arg("top_p", "f", "top-p", 0.01, 1.0, field="top_p")), group="track"),
    Address("/track/gain", "track gain in dB, after its effects",
            _track(Arg("db", "f", "gain", -60, 12, field="gain_db")), group="track"),
    Address("/track/fx", "the track's effects chain", _track(_chain("fx")), group="track"),
    Address("/track/at_playhead", "place the track at the followed DAW's playhead (see /follow)", _track(),
            group="track"),
    Address("/track/primer", "continue this audio file instead of starting from silence ('' clears)",
            _track(Arg("path", "s", "audio file", field="primer", check="file")), group="track"),
    Address("/track/vary", "make a variation of this audio file, keeping its codes at a level ('' clears)",
            _track(Arg("path", "s", "audio file", field="vary", check="file"),
                   Arg("level", "i", "level whose codes are kept", 1, 8, default=1, field="vary_level")),
            group="track"),
    # ---------------------------------------------------------------- DAW
    Address("/follow/set", "follow a DAW's tempo, meter and transport over OSC ('none' stops following)",
            (Arg("daw", "s", "the DAW", choices=("none", *DAWS)),
             Arg("listen_port", "i", "UDP port the DAW sends to; 0: REAPER 9010, Ardour 8000, Ableton 11001",
                 0, 65535, default=0),
             Arg("send_port", "i", "UDP port the DAW listens on; 0: REAPER 8000, Ardour 3819, "
                 "AbletonOSC 11000", 0, 65535, default=0)), group="daw"),
    Address("/follow/status", "what the followed DAW last said; answers /wavestack/follow …", reply="follow",
            group="daw"),
    # ---------------------------------------------------------------- jobs
    Address("/generate", "render one track; answers ack <job>, progress, done <job> <stem> or error",
            _track(), reply="job", group="job"),
    Address("/generate_all", "render every track and the mix", reply="job", group="job"),
    Address("/job/status", "state of a job; answers /wavestack/status <job> <state> <fraction> <phase>",
            (Arg("job", "i", "job id", 1),), reply="status", group="job"),
    Address("/job/cancel", "cancel a queued or running job; nothing partial is written",
            (Arg("job", "i", "job id", 1),), group="job"),
)

BY_PATH: dict[str, Address] = {a.full: a for a in TABLE}
NULLABLE = frozenset(f for a in TABLE for f in a.clears)  # attributes some address sets to None


def settings(group: str) -> list[tuple[Address, Arg]]:
    """Every (address, argument) of ``group`` ("session" or "track") that sets an attribute."""
    return [(a, arg) for a in TABLE if a.group == group for arg in a.args if arg.field]


def current(address: Address, data: dict[str, Any]) -> list[Any]:
    """The values ``address`` would be sent with to set what ``data`` (a session's or a track's
    ``to_dict()``) holds now; [] when an attribute it sets is unset (None)."""
    out = []
    for arg in address.args:
        if not arg.field:
            continue
        name, _, item = arg.field.partition(".")
        value = data[name] if not item else data[name][int(item)]
        if value is None:
            return []
        out.append(json.dumps(value) if arg.json else value)
    return out


def port(text: str) -> int:
    """A UDP/TCP port from the command line: an integer in [0, 65535] (0: any free port)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number in [0, 65535], got {text!r}")
    return value


def seconds_per_bar(tempo: float, meter: tuple[int, int] | list[int]) -> float:
    """The length of one bar in seconds at ``tempo`` (quarter notes per minute) and ``meter``."""
    numerator, denominator = meter
    return numerator * (60.0 / tempo) * (4.0 / denominator)


def chain_steps(chain: Any) -> list[dict[str, Any]]:
    """An effects chain from JSON text or a list, checked for shape only (no plugin is loaded)."""
    if isinstance(chain, str):
        try:
            chain = json.loads(chain) if chain.strip() else []
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"effects chain is not valid JSON: {exc}") from None
    if not isinstance(chain, list) or not all(isinstance(s, dict) for s in chain):
        raise ProtocolError('effects chain must be a list of steps like {"plugin": "Reverb", '
                            '"room_size": 0.5}')
    return chain


@dataclass(frozen=True)
class Reply:
    """One reply address the server sends, for the README."""
    path: str
    help: str
    args: tuple[str, ...] = field(default_factory=tuple)


REPLIES: tuple[Reply, ...] = (
    Reply("/ack", "a request was applied (jobs: with the job id)", ("address", "[job]")),
    Reply("/error", "a request failed: the job id or the address, and what is allowed",
          ("job|address", "message")),
    Reply("/pong", "answer to /ping", ("version",)),
    Reply("/models", "installed model names", ("name…",)),
    Reply("/tracks", "track names in order", ("name…",)),
    Reply("/takes", "a track's takes as JSON: path, take, seed, seconds, position_seconds, model, finished",
          ("track", "json")),
    Reply("/fx/catalog", "built-in effects as JSON: {plugin: {parameter: {default, min, max}}}", ("json",)),
    Reply("/state", "the session as JSON", ("json",)),
    Reply("/status", "a job's state (queued, running, done, failed, cancelled), progress and phase "
          "(as /phase; \"\" while it renders)", ("job", "state", "fraction", "phase")),
    Reply("/progress", "at least every 0.5 s while a job runs", ("job", "fraction")),
    Reply("/phase", "what a running job does besides rendering, when that changes: \"preparing the fast "
          "sampler …\" on the first render of an installation, then \"\" (rendering)", ("job", "text")),
    Reply("/follow", "DAW following (also sent to subscribers when it changes): the DAW or none; off, "
          "waiting, following or silent (last values kept); tempo; meter; playing 1/0; playhead seconds "
          "(-1: unknown); seconds since the DAW was heard (-1: never); which of tempo, numerator, "
          "denominator the DAW told (comma-separated; the rest are the session's own)",
          ("daw", "state", "tempo", "numerator", "denominator", "playing", "position", "heard", "measured")),
    Reply("/seed", "the seed each render used, fixed or drawn (-1), before its done", ("track", "seed")),
    Reply("/done", "a job finished; the files it wrote", ("job", "path…")),
)


def reference_markdown() -> str:
    """The README's protocol reference, generated from the table."""
    lines = ["| address | arguments | what it does |", "| --- | --- | --- |"]
    for a in TABLE:
        args = ", ".join(
            f"`{x.name}` ({x.allowed()}{'' if x.default is None else f'; default {x.default!r}'})"
            for x in a.args
        ) or "—"
        lines.append(f"| `{a.full}` | {args} | {a.help} |")
    lines += ["", "Replies (to the sender and every subscribed port):", "",
              "| address | arguments | meaning |", "| --- | --- | --- |"]
    for r in REPLIES:
        lines.append(f"| `{PREFIX}{r.path}` | {' '.join(f'`{x}`' for x in r.args)} | {r.help} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown())
