"""Honest references for eval's figures: what a model must beat, computed on the same held-out data.

None of them is trained: each is backward-adaptive (it learns from the data it has already coded,
as the held-out data is read), so it needs no training split and sees nothing of the future.

- ``lpc_bits``: bits/sample of a backward-adaptive linear-prediction coder (engine.lpc) of the
  μ-law classes, for several orders;
- ``ngram_bits``: bits/element of adaptive unigram and bigram models (counts so far, add-½
  smoothing, the bigram backing off to the unigram) of a class or code sequence;
- ``white_noise``: Gaussian noise at the loudness of given audio, the far end of every audio figure.
"""

from __future__ import annotations

import math

import numpy as np

from engine import lpc

LPC_ORDERS = (16, 32, 64)
BACKOFF = 8.0  # weight of the unigram inside the bigram estimate (pseudo-counts)


def lpc_bits(sequences: list[np.ndarray], orders: tuple[int, ...] = LPC_ORDERS) -> dict[str, float]:
    """``{"lpc16": bits/sample, ...}`` over all sequences (each coded from its start)."""
    total = sum(len(s) for s in sequences)
    out = {}
    for order in orders:
        bits = sum(lpc.reference_nll(s, order) * len(s) for s in sequences)
        out[f"lpc{order}"] = round(bits / total, 4)
    return out


def unigram_bits(sequences: list[np.ndarray], classes: int) -> float:
    """Bits/element of the adaptive unigram of ``ngram_bits``, in closed form: the k-th occurrence
    of a class costs log2((t + K/2) / (k - 1/2)) at position t (counts so far, add-½)."""
    seq = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    n = len(seq)
    if n == 0:
        return 0.0
    counts = np.bincount(seq, minlength=classes)
    occurrences = np.arange(1, counts.max() + 1)
    per_class = np.concatenate([[0.0], np.cumsum(np.log2(occurrences - 0.5))])
    bits = np.log2(np.arange(n) + 0.5 * classes).sum() - per_class[counts].sum()
    return round(float(bits / n), 4)


def ngram_bits(sequences: list[np.ndarray], classes: int) -> dict[str, float]:
    """``{"unigram": bits/element, "bigram": bits/element}`` of adaptive models that read the
    sequences in order (counts carry over from one sequence to the next)."""
    uni = np.full(classes, 0.5)
    uni_total = 0.5 * classes
    pair: dict[tuple[int, int], float] = {}
    after = np.zeros(classes)
    bits_uni = bits_bi = 0.0
    count = 0
    for seq in sequences:
        prev = -1
        for c in np.asarray(seq, dtype=np.int64).tolist():
            p_uni = uni[c] / uni_total
            bits_uni -= math.log2(p_uni)
            if prev >= 0:
                p_bi = (pair.get((prev, c), 0.0) + BACKOFF * p_uni) / (after[prev] + BACKOFF)
                pair[(prev, c)] = pair.get((prev, c), 0.0) + 1.0
                after[prev] += 1.0
            else:
                p_bi = p_uni
            bits_bi -= math.log2(p_bi)
            uni[c] += 1.0
            uni_total += 1.0
            prev = c
            count += 1
    return {"unigram": round(bits_uni / max(count, 1), 4), "bigram": round(bits_bi / max(count, 1), 4)}


def white_noise(like: np.ndarray, seed: int = 0) -> np.ndarray:
    """Gaussian white noise with the RMS of ``like`` (clipped to [-1, 1]), float32."""
    rms = float(np.sqrt(np.mean(np.square(like, dtype=np.float64))))
    noise = np.random.default_rng(seed).standard_normal(len(like)) * rms
    return np.clip(noise, -1.0, 1.0).astype(np.float32)
