"""``eval``: held-out metrics of a bundle.

- level-1 NLL in bits/sample, each higher level's NLL in bits/code, the prior's bits/code, all
  teacher-forced in windows that carry a receptive field of context;
- codebook usage (fraction of codes used) and perplexity of each level on the held-out data;
- multi-resolution STFT distance of reconstructions: teacher-forced (the decoder's most likely
  sample given the true past and the codes) and sampled (level 1 generated from the true codes);
- the NLL of the run's unconditional baseline decoder, when one is given: the codes must beat it;
- RMS, spectral flatness and centroid of audio generated from scratch next to the held-out audio's,
  the share of it that sounds at all (music.sounding_fraction), and the share of its resonance
  ridges that rise (music.rising_share: the onset chirps).

Every model figure has its references beside it (training.references, training.music): the
backward-adaptive linear predictors (orders 16, 32, 64) and an adaptive unigram for level 1, adaptive
unigram and bigram models for the codes above; reconstructions from each level's true codes next
to the μ-law round trip and to white noise; generated audio's Fréchet distance next to that between
two halves of the held-out audio and that of white noise, its pitch clarity next to theirs.
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

from engine import lpc
from engine.bundle import load_bundle
from engine.config import to_dict
from engine.level import Level
from engine.stack import Stack
from engine.wavenet import WaveNet

from . import music, references, stages
from .checkpoint import load_checkpoint
from .config import BASELINE, PRIOR, parse
from .data import load_folder
from .errors import RunError
from .metrics import describe, mr_stft_distance
from .trainer import Run

WINDOW = 16384  # positions scored per forward pass (plus the receptive field as context)
LogitsFn = Callable[[int, int], torch.Tensor]


def evaluate(
    bundle_ref: str | Path, data_dir: Path, *, baseline_run: Path | None = None, **options: Any
) -> dict[str, Any]:
    """Every metric of a bundle on held-out audio (options: see ``_evaluate``)."""
    bundle = load_bundle(bundle_ref)
    for key, value in bundle.sampling.items():  # generated as the bundle says it was measured
        options[key] = value if options.get(key) is None else options[key]
    baseline = _baseline(baseline_run, bundle.stack.cfg) if baseline_run else None
    header = {"bundle": bundle.name, "model_hash": bundle.hash}
    out = _evaluate(bundle.stack, header, data_dir, len(bundle.stack.levels), True, baseline, **options)
    if baseline is not None:
        out["baseline"]["run"] = str(baseline_run)
    return out


def evaluate_run(run_dir: Path, data_dir: Path, **options: Any) -> dict[str, Any]:
    """The metrics of a run's finished stages, before export: its finished levels from the bottom
    up, and the prior and generated audio once everything is trained (``fit --until level1``
    runs compared on held-out audio)."""
    run = Run(Path(run_dir))
    cfg = parse(run.read()["config"], str(run.manifest))
    stack = Stack(cfg.stack)
    steps = {}
    for name, module in [*((f"level{k + 1}", lv) for k, lv in enumerate(stack.levels)), (PRIOR, stack.prior)]:
        meta = run.stage_meta(name)
        if meta is None or not meta["done"]:
            break
        load_checkpoint(run.checkpoint(name), module)
        steps[name] = meta["step"]
    levels = sum(name.startswith("level") for name in steps)
    if levels == 0:
        raise RunError(f"{run_dir} has no finished level yet")
    finished = (run.stage_meta(BASELINE) or {}).get("done", False)
    baseline = _baseline(run.root, cfg.stack) if finished else None
    header = {"run": str(run.root), "steps": steps}
    return _evaluate(stack.eval(), header, data_dir, levels, PRIOR in steps, baseline, **options)


def _evaluate(
    stack: Stack, header: dict[str, Any], data_dir: Path, levels: int, with_prior: bool,
    baseline: WaveNet | None, *, max_seconds: float = 120.0, decode_seconds: float = 8.0,
    generate_seconds: float = 20.0, seed: int = 1, seeds: int = 1, show_progress: bool = False,
    figures: Path | None = None, temperature: float | None = None, top_p: float | None = None,
) -> dict[str, Any]:
    """Metrics of ``stack``'s first ``levels`` levels (and its prior), each next to its references;
    ``figures``: a folder for the audio clips and their spectrograms; ``temperature``, ``top_p``:
    the sampling of the generated audio (default 1 and 1); ``seeds``: how many renders of it
    (seeds ``seed``, ``seed + 1``, …), whose figures are averaged (each seed's are kept too)."""
    temperature = 1.0 if temperature is None else temperature
    top_p = 1.0 if top_p is None else top_p
    rate = stack.sample_rate
    data = load_folder(data_dir, sample_rate=rate, mu=stack.cfg.mu, preemphasis=stack.cfg.preemphasis,
                       keep_audio=True)
    audio_classes = _take(data.sequences, int(max_seconds * rate), stack.hops[-1])
    audio = [a[: len(c)] for a, c in zip(data.audio, audio_classes, strict=False)]
    out: dict[str, Any] = {
        **header,
        "data": {**data.describe(), "seconds_used": round(sum(map(len, audio_classes)) / rate, 1)},
    }
    bar = tqdm(total=levels + 4, desc="eval", disable=not show_progress)
    sequences, all_codes = audio_classes, []
    with torch.inference_mode():
        for k, level in enumerate(stack.levels[:levels]):
            codes = stages.encode_sequences(level, sequences)
            out[f"level{k + 1}"], preds = _level_metrics(level, k, sequences, codes)
            if k == 0:
                original = np.concatenate([_audio(stack, s[: len(p)]) for s, p in
                                           zip(sequences, preds, strict=True)])
                rebuilt = np.concatenate([_audio(stack, p) for p in preds])
                out["reconstruction"] = {"teacher_forced_stft": round(mr_stft_distance(original, rebuilt), 4)}
            sequences = codes
            all_codes.append(codes)
            bar.update(1)
        if with_prior:
            nll, count, _ = _score_net(stack.prior, sequences)
            out["prior"] = {"bits_per_code": _bits(nll, count),
                            "references": references.ngram_bits(sequences, stack.prior.classes)}
        bar.update(1)
        if baseline is not None:
            nll, count, _ = _score_net(baseline, audio_classes, hop=stack.hops[0])
            out["baseline"] = {"bits_per_sample": _bits(nll, count)}
        bar.update(1)
        recon, clips = _reconstructions(stack, audio[0], audio_classes[0], [c[0] for c in all_codes],
                                        decode_seconds, seed)
        out["reconstruction"].update(recon)
        bar.update(1)
    out["heldout_audio"] = {**describe(original, rate), "harmonicity_db": music.harmonicity_db(original)}
    if with_prior and generate_seconds > 0:
        rows = stack.sample(generate_seconds, seed=list(range(seed, seed + seeds)), temperature=temperature,
                            top_p=top_p)  # one batched pass; each row is what its seed renders alone
        out["generated"] = {"seconds": generate_seconds, "seed": seed, "seeds": seeds,
                            "temperature": temperature, "top_p": top_p, **_likeness(list(rows), audio, rate)}
        clips["generated"] = rows[0]
    bar.update(1)
    bar.close()
    if figures is not None:
        from .figures import write_figures

        out["figures"] = str(write_figures(Path(figures), clips, rate))
    return out


def _level_metrics(level: Level, k: int, sequences: list[np.ndarray], codes: list[np.ndarray]):
    """Bits per element, codebook use and references of level ``k`` (0-based); also the decoder's
    most likely next elements (teacher-forced)."""
    nll, count, preds = _score_level(level, sequences, codes)
    if k == 0:  # what a coder with no training reaches on the same audio
        refs = {**references.lpc_bits(sequences), **_unigram(sequences, level.input_classes)}
    else:
        refs = references.ngram_bits(sequences, level.input_classes)
    unit = "bits_per_sample" if k == 0 else "bits_per_code"
    return {unit: _bits(nll, count), **_usage(codes, level.num_codes), "references": refs}, preds


def _unigram(sequences: list[np.ndarray], classes: int) -> dict[str, float]:
    return {"unigram": references.unigram_bits(sequences, classes)}


def _figures(original: np.ndarray, estimate: np.ndarray, rate: int) -> dict[str, float]:
    """How close ``estimate`` is to ``original``: STFT distance, pitch agreement, noise between the
    original's partials, and the estimate's own harmonicity, pitch clarity and rising ridges."""
    return {"stft": round(mr_stft_distance(original, estimate), 4),
            "chroma_agreement": music.chroma_agreement(original, estimate, rate),
            "interpartial_db": music.interpartial_db(original, estimate),
            "harmonicity_db": music.harmonicity_db(estimate),
            "pitch_clarity": music.pitch_clarity(estimate, rate),
            "rising_share": music.rising_share(estimate, rate)}


def _reconstructions(stack: Stack, audio: np.ndarray, classes: np.ndarray, codes: list[np.ndarray],
                     seconds: float, seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Audio sampled from the true codes of each given level (as the level samples: its own
    ``sampling`` where it names one, else temperature 1 and top-p 1), next to the μ-law round trip
    (the best an 8-bit decoder can do) and white noise (the far end), all against the original;
    and the clips themselves."""
    rate, top = stack.sample_rate, stack.hops[len(codes) - 1]
    n = min(len(classes), max(top, int(seconds * rate) // top * top))
    clips = {"original": audio[:n], "mulaw_roundtrip": _audio(stack, classes[:n]),
             "white_noise": references.white_noise(audio[:n], seed)}
    for k, level_codes in enumerate(codes, start=1):
        frames = n // stack.hops[k - 1]
        clips[f"from_level{k}"] = stack.decode(
            torch.from_numpy(level_codes[None, :frames].astype(np.int64)), k, seed=seed)[0]
    out: dict[str, Any] = {"sampled_seconds": round(n / rate, 3),  # each level as it renders:
                           "level_sampling": [to_dict(lv.sampling) for lv in stack.cfg.levels[: len(codes)]]}
    for name, clip in clips.items():
        if name != "original":
            out[name] = _figures(clips["original"], clip, rate)
    out["sampled_stft"] = out["from_level1"]["stft"]
    out["mulaw_roundtrip"]["snr_db"] = _snr(clips["original"], clips["mulaw_roundtrip"])
    return out, clips


def _audio(stack: Stack, classes: np.ndarray) -> np.ndarray:
    """Audio of one sequence of level-1 classes, as the stack makes it (μ-law, de-emphasis)."""
    return stack.audio(torch.from_numpy(np.asarray(classes, np.int64))[None])[0].numpy()


def _snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = np.mean((reference.astype(np.float64) - estimate) ** 2)
    return round(10 * math.log10(np.mean(reference.astype(np.float64) ** 2) / max(noise, 1e-30)), 2)


def _likeness(renders: list[np.ndarray], heldout: list[np.ndarray], rate: int) -> dict[str, Any]:
    """Each render's figures (loudness, sounding, harmonicity, pitch clarity and variety, Fréchet
    distance of its 1-s window statistics to the held-out audio's) averaged, each render's kept
    when there are several; the references once: the held-out audio's own figures, its two halves
    (near end) and white noise as loud as the first render (far end)."""
    windows = [w for w in (music.window_features(a, rate) for a in heldout) if len(w)]
    held = np.concatenate(windows) if windows else None
    figures = []
    for generated in renders:
        own = {**describe(generated, rate), "sounding": music.sounding_fraction(generated, rate),
               "harmonicity_db": music.harmonicity_db(generated),
               "pitch_clarity": music.pitch_clarity(generated, rate),
               "pitch_variety": music.pitch_variety(generated, rate),
               "rising_share": music.rising_share(generated, rate)}
        if held is not None and len(generated) >= 2 * rate:
            own["frechet"] = music.frechet(music.window_features(generated, rate), held)
        figures.append(own)
    out: dict[str, Any] = {k: round(float(np.mean([f[k] for f in figures])), 4)
                           if isinstance(v, int | float) else v for k, v in figures[0].items()}
    if "frechet" in out:
        half = len(held) // 2
        noise = references.white_noise(renders[0], 0)

        def mean_of(figure) -> float:
            return float(np.mean([figure(a, rate) for a in heldout]))

        out["references"] = {
            "sounding_heldout": round(mean_of(music.sounding_fraction), 4),
            "frechet_heldout_halves": music.frechet(held[:half], held[half:]),
            "frechet_white_noise": music.frechet(music.window_features(noise, rate), held),
            "harmonicity_db_white_noise": music.harmonicity_db(noise),
            "pitch_clarity_heldout": round(mean_of(music.pitch_clarity), 4),
            "pitch_clarity_white_noise": music.pitch_clarity(noise, rate),
            "pitch_variety_heldout": round(mean_of(music.pitch_variety), 3),
            "pitch_variety_white_noise": music.pitch_variety(noise, rate),
            "rising_share_heldout": round(mean_of(music.rising_share), 4),
        }
    if len(figures) > 1:
        out["per_seed"] = figures
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
    context = -(-_context(level.decoder) // hop) * hop
    nll, count, preds = 0.0, 0, []
    for seq, c in zip(sequences, codes, strict=True):
        x = torch.from_numpy(seq[: len(c) * hop].astype(np.int64))
        cz = torch.from_numpy(c.astype(np.int64))

        def logits(lo: int, hi: int, x=x, cz=cz) -> torch.Tensor:
            return level.decode_logits(x[None, lo:hi], cz[None, lo // hop: -(-hi // hop)])[0]

        total, p = _windowed(x, logits, context)
        nll, count = nll + total, count + len(x)
        preds.append(p.numpy().astype(np.uint8 if level.input_classes <= 256 else np.int16))
    return nll, count, preds


def _context(net: WaveNet) -> int:
    """Past elements a window needs for its first scored position: the receptive field, and for a
    centred net the linear predictor's history as well."""
    return net.receptive_field + (lpc.WINDOW + lpc.BLOCK if net.lpc_order else 0)


def _score_net(net: WaveNet, sequences: list[np.ndarray], hop: int = 1):
    context = -(-_context(net) // hop) * hop
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
