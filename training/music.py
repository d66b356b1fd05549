"""Audio figures a musician's ear would agree with, each with a known far end (white noise).

- ``harmonicity_db``: energy near spectral peaks over the energy between them (tonal music: high;
  white noise: about 0 dB or below);
- ``chroma_agreement``: per-frame correlation of the 12 pitch classes of two signals (pitch kept: 1;
  unrelated or noise: about 0);
- ``interpartial_db``: the energy an estimate puts between the reference's partials, relative to the
  reference's partials (the noise floor a listener hears under the notes);
- ``pitch_clarity``: how few pitch classes a frame's energy falls on (one note: near 1; chords
  and music: in between; noise or pitchless clatter: near 0), needing no reference to compare to;
- ``sounding_fraction``: the share of 100-ms frames that sound at all (above −45 dBFS): the
  per-frame figures above leave silent frames out, so music that plays half the time and music
  that plays throughout can score alike on them;
- ``frechet``: Fréchet distance between the distributions of 1-s window statistics (chroma, octave
  band balance, harmonicity) of two collections of audio.

Numpy only; 16 kHz audio is assumed by the pitch range but any rate works.
"""

from __future__ import annotations

import math

import numpy as np

N_FFT = 4096  # 256 ms at 16 kHz: semitones are resolved down to about C2
HOP = 1024
PITCHES = np.arange(36, 96)  # MIDI C2 .. B6
PEAK_BINS = 2  # a partial's energy: the peak bin and this many on either side
SILENT_DB = -50.0  # frames this far below the loudest frame are left out of per-frame figures
SOUNDING_DB = -45.0  # a 100-ms frame above this RMS (dBFS) sounds: 27 dB under the corpus's loudness


def _power(audio: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Power spectrogram (frames, n_fft // 2 + 1) with a Hann window."""
    x = np.asarray(audio, dtype=np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = 1 + (len(x) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.fft.rfft(x[index] * np.hanning(n_fft), axis=1)
    return spec.real**2 + spec.imag**2


def _loud(power: np.ndarray) -> np.ndarray:
    """Frames within SILENT_DB of the loudest one."""
    energy = power.sum(1)
    return energy > energy.max() * 10 ** (SILENT_DB / 10) if energy.max() > 0 else energy > 0


def _peaks(power: np.ndarray) -> np.ndarray:
    """Boolean (frames, bins): bins within PEAK_BINS of a local maximum standing 10 dB above the
    frame's median."""
    floor = np.median(power, axis=1, keepdims=True) * 10.0
    inner = power[:, 1:-1]
    top = (inner > power[:, :-2]) & (inner >= power[:, 2:]) & (inner > floor)
    top = np.pad(top, ((0, 0), (1, 1)))
    near = np.zeros_like(top)
    for shift in range(-PEAK_BINS, PEAK_BINS + 1):
        near |= np.roll(top, shift, axis=1)
    return near


def _weighted(values: np.ndarray, weights: np.ndarray) -> float:
    return float((values * weights).sum() / max(weights.sum(), 1e-30))


def harmonicity_db(audio: np.ndarray) -> float:
    """Energy within partials over energy between them, in dB, power-weighted over loud frames."""
    power = _power(audio)
    loud = _loud(power)
    if not loud.any():
        return 0.0
    power = power[loud]
    near = _peaks(power)
    ratio = (power * near).sum(1) / np.maximum((power * ~near).sum(1), 1e-30)
    return round(10 * np.log10(max(_weighted(ratio, power.sum(1)), 1e-30)), 2)


def interpartial_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The level of ``estimate`` between the reference's partials relative to the reference's
    partials, in dB: per loud frame of the reference, the mean dB of the estimate over the bins away
    from the reference's peaks (every bin counts alike, so a high-band noise floor shows) minus the
    dB of the reference's mean power at its peaks; averaged over frames."""
    n = min(len(reference), len(estimate))
    ref, est = _power(reference[:n]), _power(estimate[:n])
    loud = _loud(ref)
    ref, est = ref[loud], est[loud]
    near = _peaks(ref)
    rows = []
    for r, e, peak in zip(ref, est, near, strict=True):
        if peak.any() and (~peak).any():
            floor = np.mean(10 * np.log10(np.maximum(e[~peak], 1e-30)))
            rows.append(floor - 10 * np.log10(max(r[peak].mean(), 1e-30)))
    return round(float(np.mean(rows)), 2) if rows else 0.0


def _semitone_matrix(sample_rate: int, n_fft: int = N_FFT) -> np.ndarray:
    """(bins, pitches) triangular weights mapping STFT bins to semitones."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    with np.errstate(divide="ignore"):
        midi = 69 + 12 * np.log2(np.maximum(freqs, 1e-9) / 440.0)
    weights = np.maximum(0.0, 1.0 - np.abs(midi[:, None] - PITCHES[None, :]))
    return weights / weights.sum(0, keepdims=True)  # white noise: the same power in every semitone


def semitones(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Semitone power spectrogram (frames, len(PITCHES))."""
    return _power(audio) @ _semitone_matrix(sample_rate)


def chroma(audio: np.ndarray, sample_rate: int, power: np.ndarray | None = None) -> np.ndarray:
    """Pitch-class power (frames, 12), C first; ``power``: the clip's ``_power`` if at hand."""
    semi = (_power(audio) if power is None else power) @ _semitone_matrix(sample_rate)
    return semi.reshape(semi.shape[0], -1, 12).sum(1)


def chroma_agreement(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Power-weighted mean over the reference's loud frames of the correlation of the two signals'
    chroma vectors (1: the same pitches; about 0: unrelated)."""
    n = min(len(reference), len(estimate))
    power = _power(reference[:n])
    a, b = chroma(reference[:n], sample_rate, power), chroma(estimate[:n], sample_rate)
    loud = _loud(power)
    a, b, weights = a[loud], b[loud], a[loud].sum(1)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    corr = (a * b).sum(1) / np.maximum(np.sqrt((a * a).sum(1) * (b * b).sum(1)), 1e-30)
    return round(_weighted(corr, weights), 4)


def pitch_clarity(audio: np.ndarray, sample_rate: int) -> float:
    """Power-weighted mean over loud frames of 1 − entropy(chroma) / log 12."""
    power = _power(audio)
    c = chroma(audio, sample_rate, power)[_loud(power)]
    if not len(c):
        return 0.0
    weights = c.sum(1)
    p = c / np.maximum(weights[:, None], 1e-30)
    entropy = -(p * np.log(np.maximum(p, 1e-30))).sum(1)
    return round(_weighted(1.0 - entropy / np.log(12), weights), 4)


def pitch_variety(audio: np.ndarray, sample_rate: int, seconds: float = 1.0) -> float:
    """Entropy in bits of the strongest pitch class of each loud 1-s window (half-overlapping)
    across the clip: 0 for a drone (one note held throughout, which pitch clarity and a Fréchet
    distance both reward), up to log2 12 ≈ 3.58; music that moves through several notes scores
    in between, and noise high too — so read it beside pitch clarity."""
    size, hop = int(seconds * sample_rate), int(seconds * sample_rate) // 2
    tops, energy = [], []
    for start in range(0, len(audio) - size + 1, hop):
        w = audio[start : start + size]
        tops.append(int(np.argmax(semitones(w, sample_rate).sum(0).reshape(-1, 12).sum(0))))
        energy.append(float(np.mean(np.square(w, dtype=np.float64))))
    if not tops or max(energy) <= 0:
        return 0.0
    loud = np.array(energy) > max(energy) * 10 ** (SILENT_DB / 10)
    p = np.bincount(np.array(tops)[loud], minlength=12) / loud.sum()
    return round(max(0.0, float(-(p[p > 0] * np.log2(p[p > 0])).sum())), 3)


def sounding_fraction(audio: np.ndarray, sample_rate: int, floor_db: float = SOUNDING_DB) -> float:
    """Share of the clip's 100-ms frames whose RMS is above ``floor_db`` dBFS (held-out piano:
    all of them; a model that falls silent between phrases: its rests leave them out)."""
    size = max(1, sample_rate // 10)
    frames = np.asarray(audio, dtype=np.float64)[: len(audio) // size * size].reshape(-1, size)
    if not len(frames):
        return 0.0
    level = np.mean(frames**2, axis=1)
    return round(float(np.mean(level > 10 ** (floor_db / 10))), 4)


def rising_share(audio: np.ndarray, sample_rate: int, band: tuple[float, float] = (1000.0, 6000.0)) -> float:
    """Share of the clip's resonance ridges in ``band`` that rise: the onset chirps a decoder with a
    self-fitted predictor makes (docs/training-notes.md, A/B 15 and 19). The smoothed spectrum's
    peaks (64-ms frames every 8 ms, a 140-Hz moving average, 3 dB above the 190 Hz either side) are
    followed from frame to frame (within 94 Hz); a ridge of at least 80 ms that rises by at least
    1 kHz a second, in 70 % of its steps or more, counts as rising. Held-out piano, whose partials
    hold their pitch, scores about 0.001-0.003, and white noise about as little."""
    n_fft = 1 << max(4, round(math.log2(0.064 * sample_rate)))
    hop, hz = n_fft // 8, sample_rate / n_fft
    x = np.asarray(audio, dtype=np.float64)
    if len(x) < n_fft:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    sounding = power.sum(1) > power.sum(1).max() * 1e-5
    lo, hi = int(band[0] / hz), min(int(band[1] / hz) + 1, power.shape[1])
    width, reach, link = max(1, round(140 / hz)), max(1, round(190 / hz)), max(1, round(94 / hz))
    cum = np.cumsum(np.pad(power, ((0, 0), (width // 2 + 1, width - width // 2 - 1))), axis=1)
    level = 10 * np.log10((cum[:, width:] - cum[:, :-width])[:, lo:hi] / width + 1e-20)
    shifted = [np.roll(level, s, 1) for s in range(-reach, reach + 1) if s]
    peaks = (level >= np.max(shifted, 0)) & (level - np.mean(shifted, 0) >= 3.0) & sounding[:, None]
    peaks[:, :reach] = peaks[:, -reach:] = False
    ridges: list[list[int]] = []
    alive: dict[int, int] = {}  # bin -> ridge, for the ridges that reached the previous frame
    for row in peaks:
        now: dict[int, int] = {}
        for b in np.flatnonzero(row):
            near = [(abs(b - p), r) for p, r in alive.items() if abs(b - p) <= link and r not in now.values()]
            if near:
                r = min(near)[1]
                ridges[r].append(b)
            else:
                ridges.append([b])
                r = len(ridges) - 1
            now[b] = r
        alive = now
    min_frames, seconds = max(2, round(0.08 * sample_rate / hop)), hop / sample_rate
    rising = 0
    for ridge in ridges:
        if len(ridge) >= min_frames:
            f = np.array(ridge) * hz
            slope = np.polyfit(np.arange(len(f)) * seconds, f, 1)[0]
            rising += len(f) if slope >= 1000.0 and np.mean(np.diff(f) >= 0) >= 0.7 else 0
    points = sum(len(r) for r in ridges)
    return round(rising / points, 4) if points else 0.0


def window_features(audio: np.ndarray, sample_rate: int, seconds: float = 1.0) -> np.ndarray:
    """Statistics of 1-s windows (half-overlapping): chroma shares (12), octave band shares of the
    semitone spectrum (5), harmonicity (dB / 10) → (windows, 18)."""
    size, hop = int(seconds * sample_rate), int(seconds * sample_rate) // 2
    rows = []
    for start in range(0, len(audio) - size + 1, hop):
        w = audio[start : start + size]
        semi = semitones(w, sample_rate).sum(0)
        total = max(semi.sum(), 1e-30)
        rows.append(np.concatenate([
            semi.reshape(-1, 12).sum(0) / total,
            semi.reshape(-1, 12).sum(1) / total,
            [harmonicity_db(w) / 10.0],
        ]))
    return np.array(rows)


def frechet(a: np.ndarray, b: np.ndarray, shrink: float = 1e-3) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``a`` and ``b`` (a small ridge
    ``shrink`` keeps few-window covariances well-posed)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    dim = a.shape[1]
    ca = np.cov(a, rowvar=False) + shrink * np.eye(dim)
    cb = np.cov(b, rowvar=False) + shrink * np.eye(dim)
    root_a = _sqrtm(ca)
    cross = _sqrtm(root_a @ cb @ root_a)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * cross))
    return round(max(value, 0.0), 4)


def _sqrtm(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.sqrt(np.maximum(vals, 0.0))) @ vecs.T
