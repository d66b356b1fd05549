"""``eval``: held-out metrics of a bundle.

- level-1 NLL in bits/sample, each higher level's NLL in bits/code, the prior's bits/code, all
  teacher-forced in windows that carry a receptive field of context;
- codebook usage (fraction of codes used) and perplexity of each level on the held-out data;
- multi-resolution STFT distance of reconstructions: teacher-forced (the decoder's most likely
  sample given the true past and the codes) and sampled (level 1 generated from the true codes);
- the NLL of the run's unconditional baseline decoder, when one is given: the codes must beat it;
- RMS, spectral flatness and centroid of audio generated from scratch next to the held-out audio's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engine import mulaw
from engine.bundle import load_bundle
from engine.level import Level
from engine.stack import Stack
from engine.wavenet import WaveNet

from . import stages
from .checkpoint import load_checkpoint
from .config import BASELINE, parse
from .data import load_folder
from .errors import RunError
from .metrics import describe, mr_stft_distance
from .trainer import Run

WINDOW = 16384  # positions scored per forward pass (plus the receptive field as context)
LogitsFn = Callable[[int, int], torch.Tensor]


def evaluate(
    bundle_ref: str | Path,
    data_dir: Path,
    *,
    baseline_run: Path | None = None,
    max_seconds: float = 120.0,
    decode_seconds: float = 2.0,
    generate_seconds: float = 10.0,
    seed: int = 1,
    show_progress: bool = False,
) -> dict[str, Any]:
    bundle = load_bundle(bundle_ref)
    stack, rate = bundle.stack, bundle.sample_rate
    data = load_folder(data_dir, sample_rate=rate, mu=stack.cfg.mu)
    audio_classes = _take(data.sequences, int(max_seconds * rate), stack.hops[-1])
    out: dict[str, Any] = {
        "bundle": bundle.name,
        "model_hash": bundle.hash,
        "data": {**data.describe(), "seconds_used": round(sum(map(len, audio_classes)) / rate, 1)},
    }
    baseline = _baseline(baseline_run, stack.cfg) if baseline_run else None
    bar = tqdm(total=len(stack.levels) + 3, desc="eval", disable=not show_progress)
    sequences = audio_classes
    with torch.inference_mode():
        for k, level in enumerate(stack.levels):
            codes = stages.encode_sequences(level, sequences)
            nll, count, preds = _score_level(level, sequences, codes)
            unit = "bits_per_sample" if k == 0 else "bits_per_code"
            out[f"level{k + 1}"] = {unit: _bits(nll, count), **_usage(codes, level.num_codes)}
            if k == 0:
                original = np.concatenate([mulaw.decode_np(s[: len(p)], stack.cfg.mu) for s, p in
                                           zip(sequences, preds, strict=True)])
                rebuilt = mulaw.decode_np(np.concatenate(preds), stack.cfg.mu)
                out["reconstruction"] = {"teacher_forced_stft": round(mr_stft_distance(original, rebuilt), 4)}
                level1_codes = codes
            sequences = codes
            bar.update(1)
        nll, count, _ = _score_net(stack.prior, sequences)
        out["prior"] = {"bits_per_code": _bits(nll, count)}
        bar.update(1)
        if baseline is not None:
            nll, count, _ = _score_net(baseline, audio_classes, hop=stack.hops[0])
            out["baseline"] = {"bits_per_sample": _bits(nll, count), "run": str(baseline_run)}
        bar.update(1)
        out["reconstruction"].update(_sampled_decode(stack, audio_classes[0], level1_codes[0],
                                                     decode_seconds, seed))
        bar.update(1)
    out["heldout_audio"] = describe(original, rate)
    if generate_seconds > 0:
        generated = stack.sample(generate_seconds, seed=seed)[0]
        out["generated"] = {"seconds": generate_seconds, "seed": seed, **describe(generated, rate)}
    bar.close()
    return out


def _take(sequences: list[np.ndarray], budget: int, multiple: int) -> list[np.ndarray]:
    """Sequences in order until ``budget`` elements, each cut to a multiple of the top hop."""
    taken = []
    for seq in sequences:
        n = (min(len(seq), budget) // multiple) * multiple
        if n:
            taken.append(seq[:n])
            budget -= n
        if budget < multiple:
            break
    if not taken:
        raise RunError(f"held-out audio is shorter than one top-level frame ({multiple} samples)")
    return taken


def _windowed(x: torch.Tensor, logits_fn: LogitsFn, context: int) -> tuple[float, torch.Tensor]:
    """Summed NLL (nats) and argmax predictions of ``x`` (T,), window by window with context."""
    total, preds = 0.0, []
    for start in range(0, len(x), WINDOW):
        lo, hi = max(0, start - context), min(len(x), start + WINDOW)
        logits = logits_fn(lo, hi)[:, start - lo:]
        target = x[start:hi]
        total += float(F.cross_entropy(logits.T, target, reduction="sum"))
        preds.append(logits.argmax(0))
    return total, torch.cat(preds)


def _score_level(level: Level, sequences: list[np.ndarray], codes: list[np.ndarray]):
    hop = level.hop
    context = -(-level.decoder.receptive_field // hop) * hop
    nll, count, preds = 0.0, 0, []
    for seq, c in zip(sequences, codes, strict=True):
        x = torch.from_numpy(seq[: len(c) * hop].astype(np.int64))
        cz = torch.from_numpy(c.astype(np.int64))

        def logits(lo: int, hi: int, x=x, cz=cz) -> torch.Tensor:
            cond = level.condition(cz[None, lo // hop: -(-hi // hop)])
            return level.decoder(x[None, lo:hi], cond)[0]

        total, p = _windowed(x, logits, context)
        nll, count = nll + total, count + len(x)
        preds.append(p.numpy().astype(np.uint8 if level.input_classes <= 256 else np.int16))
    return nll, count, preds


def _score_net(net: WaveNet, sequences: list[np.ndarray], hop: int = 1):
    context = -(-net.receptive_field // hop) * hop
    nll, count = 0.0, 0
    for seq in sequences:
        x = torch.from_numpy(seq.astype(np.int64))
        total, _ = _windowed(x, lambda lo, hi, x=x: net(x[None, lo:hi])[0], context)
        nll, count = nll + total, count + len(x)
    return nll, count, None


def _usage(codes: list[np.ndarray], num_codes: int) -> dict[str, float]:
    counts = np.bincount(np.concatenate(codes).astype(np.int64), minlength=num_codes)
    p = counts / counts.sum()
    entropy = -float((p[p > 0] * np.log(p[p > 0])).sum())
    return {"usage": round(float((counts > 0).mean()), 4), "perplexity": round(math.exp(entropy), 1)}


def _bits(nats: float, count: int) -> float:
    return round(nats / count / math.log(2), 4)


def _sampled_decode(
    stack: Stack, classes: np.ndarray, codes: np.ndarray, seconds: float, seed: int
) -> dict[str, Any]:
    hop = stack.hops[0]
    frames = min(len(codes), max(1, int(seconds * stack.sample_rate) // hop))
    audio = stack.decode(torch.from_numpy(codes[None, :frames].astype(np.int64)), 1, seed=seed)[0]
    original = mulaw.decode_np(classes[: frames * hop], stack.cfg.mu)
    return {"sampled_stft": round(mr_stft_distance(original, audio), 4),
            "sampled_seconds": round(frames * hop / stack.sample_rate, 3)}


def _baseline(run_dir: Path, stack_cfg) -> WaveNet:
    run = Run(Path(run_dir))
    meta = run.stage_meta(BASELINE)
    if meta is None or not meta["done"]:
        raise RunError(f"{run_dir} has no finished baseline stage")
    cfg = parse(run.read()["config"], str(run.manifest))
    if cfg.stack.levels[0].decoder != stack_cfg.levels[0].decoder or cfg.stack.mu != stack_cfg.mu:
        raise RunError(f"the baseline in {run_dir} is not the size of this bundle's level-1 decoder")
    net = stages.build(BASELINE, cfg.stack)
    load_checkpoint(run.checkpoint(BASELINE), net)
    return net.eval()
