"""The default corpus: Bach chorales from the ``music21`` wheel, played by a General MIDI piano.

Nothing is downloaded. Each score is turned into MIDI with every part on program 0 (Acoustic Grand
Piano), rendered by Debian's ``fluidsynth`` at 48 kHz with reverb and chorus off, downmixed to
mono, resampled to 16 kHz with soxr, trimmed of leading/trailing silence and peak-normalised.
About one file in ten goes to the held-out split, chosen by a hash of its name so the split never
depends on ``--limit`` or on the order of rendering.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from engine.bundle import sha256_file
from engine.wavfile import write_wav_atomic

from .errors import CorpusError
from .jsonfile import write_json_atomic

SAMPLE_RATE = 16000
RENDER_RATE = 48000
FLUID_GM = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn")
PEAK = 10 ** (-1 / 20)  # normalise to -1 dBFS
TRIM_DB = -60.0  # silence threshold relative to the peak
PAD_SECONDS = 0.05  # kept around trimmed audio
GAIN = 0.5  # fluidsynth master gain (its default is 0.2, quiet for a solo piano)
SPLITS = ("train", "heldout")
INSTALL_HINT = (
    "fluidsynth is not installed or not on PATH. Install it with `apt-get install fluidsynth` "
    "(Debian/Ubuntu), `dnf install fluidsynth` (Fedora) or `brew install fluid-synth` (macOS), "
    "then run this command again."
)


def find_fluidsynth() -> str:
    path = shutil.which("fluidsynth")
    if path is None:
        raise CorpusError(INSTALL_HINT)
    return path


def default_soundfont() -> Path:
    """Debian's FluidR3 GM if installed, else the small TimGM6mb.sf2 inside the pretty_midi wheel."""
    if FLUID_GM.is_file():
        return FLUID_GM
    spec = importlib.util.find_spec("pretty_midi")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "TimGM6mb.sf2"
        if bundled.is_file():
            return bundled
    raise CorpusError(
        "no General MIDI soundfont found: install Debian's fluid-soundfont-gm "
        "(`apt-get install fluid-soundfont-gm`) or the pretty_midi wheel "
        "(`pip install pretty_midi`), or pass --soundfont FILE.sf2"
    )


def bach_scores(limit: int | None = None) -> list[Path]:
    """Chorale scores that ship in music21's corpus, one per name, sorted by name."""
    try:
        from music21 import corpus
    except ImportError as exc:
        raise CorpusError("the corpus needs music21: pip install 'wavestack[corpus]'") from exc
    by_name: dict[str, Path] = {}  # a few chorales ship in two formats: keep the first suffix listed
    for path in map(Path, corpus.getComposer("bach")):
        if path.suffix not in SCORE_SUFFIXES:
            continue
        name = path.name.rsplit(".", 1)[0]
        known = by_name.get(name)
        if known is None or SCORE_SUFFIXES.index(path.suffix) < SCORE_SUFFIXES.index(known.suffix):
            by_name[name] = path
    paths = [by_name[name] for name in sorted(by_name)]
    if not paths:
        raise CorpusError("music21's corpus holds no Bach scores: reinstall music21")
    return paths[:limit] if limit else paths


def split_of(name: str) -> str:
    return "heldout" if int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 10 == 0 else "train"


def score_to_midi(score: Path, midi: Path) -> None:
    """Write ``score`` as MIDI with every part played by the GM piano (program 0)."""
    from music21 import converter, instrument

    parsed = converter.parse(score)
    for part in parsed.parts:
        for old in part.recurse().getElementsByClass(instrument.Instrument):
            old.activeSite.remove(old)
        part.insert(0, instrument.Piano())
    parsed.write("midi", fp=str(midi))


def fluidsynth_version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def render_midi(exe: str, soundfont: Path, midi: Path, wav: Path) -> None:
    cmd = [exe, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", str(GAIN), "-r", str(RENDER_RATE),
           "-O", "float", "-T", "wav", "-F", str(wav), str(soundfont), str(midi)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not wav.is_file():
        raise CorpusError(f"fluidsynth failed on {midi.name}: {done.stderr.strip()[-400:]}")


def finish_audio(stereo: np.ndarray, rate: int) -> np.ndarray:
    """Downmix, resample to 16 kHz, trim silence at both ends, peak-normalise."""
    mono = stereo.mean(axis=1) if stereo.ndim == 2 else stereo
    audio = soxr.resample(mono.astype(np.float32), rate, SAMPLE_RATE, quality="VHQ")
    peak = float(np.abs(audio).max(initial=0.0))
    if peak <= 0:
        return audio[:0]
    loud = np.flatnonzero(np.abs(audio) > peak * 10 ** (TRIM_DB / 20))
    pad = int(PAD_SECONDS * SAMPLE_RATE)
    audio = audio[max(0, loud[0] - pad): loud[-1] + pad]
    return (audio * (PEAK / peak)).astype(np.float32)


@dataclass(frozen=True)
class Entry:
    file: str  # relative to the corpus folder
    score: str  # score path inside music21's corpus
    split: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "score": self.score, "split": self.split, "seconds": self.seconds}


def build_bach(
    out: Path,
    *,
    soundfont: Path | None = None,
    limit: int | None = None,
    on_file: Callable[[Entry], None] | None = None,
) -> dict[str, Any]:
    """Render the chorales into ``out``/{train,heldout} and write ``out``/corpus.json.

    Files already rendered are kept, so an interrupted build resumes where it stopped.
    """
    exe = find_fluidsynth()
    soundfont = Path(soundfont) if soundfont else default_soundfont()
    if not soundfont.is_file():
        raise CorpusError(f"soundfont not found: {soundfont}")
    scores = bach_scores(limit)
    from music21 import __version__ as m21_version

    out.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    skipped: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="wavestack-corpus-") as tmp:
        for score in scores:
            name = score.name.rsplit(".", 1)[0]
            split = split_of(name)
            target = out / split / f"{name}.wav"
            if not target.is_file():
                midi, raw = Path(tmp) / f"{name}.mid", Path(tmp) / f"{name}.wav"
                try:
                    score_to_midi(score, midi)
                except Exception as exc:  # music21 raises many kinds on malformed scores
                    reason = f"{type(exc).__name__}: {exc}"
                    skipped.append({"score": _corpus_relative(score), "reason": reason})
                    continue
                render_midi(exe, soundfont, midi, raw)
                stereo, rate = sf.read(raw, dtype="float32", always_2d=True)
                audio = finish_audio(stereo, rate)
                raw.unlink()
                if audio.size == 0:
                    skipped.append({"score": _corpus_relative(score), "reason": "rendered silence"})
                    continue
                write_wav_atomic(target, audio, SAMPLE_RATE, subtype="PCM_16")
            entry = Entry(
                file=f"{split}/{target.name}",
                score=_corpus_relative(score),
                split=split,
                seconds=round(sf.info(target).duration, 3),
            )
            entries.append(entry)
            if on_file is not None:
                on_file(entry)
    manifest = {
        "corpus": "bach-piano",
        "sample_rate": SAMPLE_RATE,
        "files": [e.to_dict() for e in entries],
        "skipped": skipped,
        "seconds": {s: round(sum(e.seconds for e in entries if e.split == s), 1) for s in SPLITS},
        "recipe": {
            "scores": f"music21 {m21_version} corpus, composer 'bach', suffixes {list(SCORE_SUFFIXES)}",
            "limit": limit,
            "instrument": "every part on General MIDI program 0 (Acoustic Grand Piano)",
            "tempo": "the score's own marks, else music21's default of 120 quarter notes per minute",
            "synth": fluidsynth_version(exe),
            "soundfont": str(soundfont),
            "soundfont_sha256": sha256_file(soundfont),
            "render": f"{RENDER_RATE} Hz float, reverb off, chorus off, gain {GAIN}",
            "post": f"mono mean, soxr VHQ to {SAMPLE_RATE} Hz, trim at {TRIM_DB} dB of the peak "
                    f"with {PAD_SECONDS} s pad, peak -1 dBFS, 16-bit PCM",
            "heldout": "files whose sha256(name) mod 10 is 0",
        },
    }
    write_json_atomic(out / "corpus.json", manifest)
    return manifest


def _corpus_relative(score: Path) -> str:
    parts = score.parts
    return "/".join(parts[parts.index("corpus") + 1:]) if "corpus" in parts else score.name
