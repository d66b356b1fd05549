"""eval's references and music figures on signals whose answers are known."""

import numpy as np
import pytest

from engine import mulaw
from training import music, references

RATE = 16000


def chord(seconds: float = 3.0, notes=(60, 64, 67), seed: int = 0) -> np.ndarray:
    """Piano-ish tones: a few decaying harmonics per MIDI note, a little noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = np.zeros_like(t)
    for n in notes:
        f = 440 * 2 ** ((n - 69) / 12)
        x += sum(0.2 / k * np.sin(2 * np.pi * f * k * t) for k in range(1, 6)) * np.exp(-0.5 * t)
    return (x + 1e-4 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def test_lpc_references_rank_a_tone_below_music_below_noise():
    tone = mulaw.encode_np(0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE))
    noise = mulaw.encode_np(references.white_noise(chord(1.0)))
    bits = [references.lpc_bits([s], (16, 32))["lpc32"] for s in (tone, mulaw.encode_np(chord(1.0)), noise)]
    assert bits[0] < bits[1] < bits[2]
    assert set(references.lpc_bits([tone])) == {"lpc16", "lpc32", "lpc64"}


def test_adaptive_ngrams_learn_repetition_and_cost_log2_k_on_uniform_codes():
    uniform = np.random.default_rng(0).integers(0, 64, 20000)
    u = references.ngram_bits([uniform], 64)
    assert u["unigram"] == pytest.approx(6.0, abs=0.05) and u["bigram"] > u["unigram"]  # nothing to learn
    cycle = np.tile(np.arange(64), 300)  # every code predicts the next
    c = references.ngram_bits([cycle], 64)
    assert c["unigram"] == pytest.approx(6.0, abs=0.05) and c["bigram"] < 1.0
    skewed = [np.random.default_rng(1).choice(64, 3000, p=np.arange(1, 65) / 2080), cycle[:100]]
    assert references.unigram_bits(skewed, 64) == references.ngram_bits(skewed, 64)["unigram"]


def test_white_noise_has_the_loudness_asked_for():
    x = chord()
    noise = references.white_noise(x, seed=3)
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.02)


def test_harmonicity_separates_tones_from_noise():
    x = chord()
    assert music.harmonicity_db(x) > 20 > 0 > music.harmonicity_db(references.white_noise(x))


def test_chroma_agreement_is_one_for_the_same_notes_and_low_for_other_notes_or_noise():
    c_major, f_sharp = chord(), chord(notes=(66, 70, 73))
    assert music.chroma_agreement(c_major, c_major * 0.5, RATE) > 0.99
    assert music.chroma_agreement(c_major, chord(seed=1) + 0.01 * references.white_noise(c_major), RATE) > 0.9
    assert music.chroma_agreement(c_major, f_sharp, RATE) < 0.3
    assert abs(music.chroma_agreement(c_major, references.white_noise(c_major), RATE)) < 0.3


def test_pitch_clarity_ranks_one_note_above_a_chord_above_noise():
    note, triad = chord(notes=(60,)), chord()
    noise = references.white_noise(triad)
    one, three, none = (music.pitch_clarity(x, RATE) for x in (note, triad, noise))
    assert one > three > 0.1 > none >= 0.0
    assert music.pitch_clarity(np.zeros(RATE, np.float32), RATE) == 0.0


def test_sounding_fraction_counts_the_time_that_plays_not_the_rests():
    phrase = chord(seconds=2.0)  # at the corpus's level, about -20 dBFS
    rest = np.zeros(RATE * 2, np.float32)
    assert music.sounding_fraction(phrase, RATE) == 1.0
    assert music.sounding_fraction(np.concatenate([phrase, rest]), RATE) == 0.5
    assert music.sounding_fraction(phrase * 10 ** (-40 / 20), RATE) == 0.0  # 40 dB down: inaudible in a mix
    # the per-frame figures leave the rest out: they cannot tell the two apart
    clarity = music.pitch_clarity(phrase, RATE)  # (frames across the phrase's end differ a little)
    assert music.pitch_clarity(np.concatenate([phrase, rest]), RATE) == pytest.approx(clarity, abs=0.01)


def test_pitch_variety_is_nil_for_a_drone_and_counts_the_notes_of_a_tune():
    drone = chord(seconds=8.0, notes=(70,))
    tune = np.concatenate([chord(seconds=2.0, notes=(n,), seed=i) for i, n in enumerate((60, 62, 64, 65))])
    assert music.pitch_variety(drone, RATE) == 0.0
    assert 1.5 < music.pitch_variety(tune, RATE) <= 2.0  # four notes, two seconds each: log2 4 = 2
    assert music.pitch_variety(references.white_noise(tune), RATE) > 2.2  # 15 windows of noise
    assert music.pitch_variety(np.zeros(RATE, np.float32), RATE) == 0.0


def test_interpartial_level_rises_with_added_noise():
    x = chord()
    noise = references.white_noise(x, seed=1)
    levels = [music.interpartial_db(x, x + g * noise) for g in (0.0, 0.01, 0.1, 1.0)]
    assert levels == sorted(levels) and levels[-1] - levels[0] > 30
    rt = mulaw.decode_np(mulaw.encode_np(x))
    assert levels[0] < music.interpartial_db(x, rt) < levels[-1]


def test_frechet_distance_is_small_within_music_and_large_to_noise():
    a, b = chord(4.0), chord(4.0, seed=2)
    fa, fb = music.window_features(a, RATE), music.window_features(b, RATE)
    fn = music.window_features(references.white_noise(a), RATE)
    assert fa.shape == (7, 18)
    assert music.frechet(fa, fa) == pytest.approx(0.0, abs=1e-6)
    assert music.frechet(fa, fb) < 0.1 * music.frechet(fa, fn)


def test_rising_share_finds_a_rising_resonance_and_not_held_notes_or_noise():
    t = np.arange(2 * RATE) / RATE
    rising = (0.3 * np.sin(2 * np.pi * (2000 * t + 1000 * t**2))).astype(np.float32)  # 2 -> 6 kHz
    falling = rising[::-1].copy()
    notes = chord(seconds=2.0, notes=(72, 76, 79, 84))  # partials up to 5 kHz, holding their pitch
    noise = references.white_noise(notes, 0)
    assert music.rising_share(rising, RATE) > 0.8
    assert music.rising_share(falling, RATE) == 0.0
    assert music.rising_share(notes, RATE) < 0.01 and music.rising_share(noise, RATE) < 0.01
    # among held notes the rising ridge is a share of all ridges, more the louder it is
    assert music.rising_share(notes, RATE) < music.rising_share(notes + 0.05 * rising, RATE) \
        < music.rising_share(notes + 0.2 * rising, RATE)
