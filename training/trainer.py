"""``fit``: train every stage of a stack in order, resumably, in one or many processes.

Run directory::

    run.json                     config, data description, history of fit invocations
    checkpoints/<stage>.safetensors   model + optimiser + RNG + data position (atomic)
    codes/level<k>.npz           the training data encoded by level k (input of the next stage)
    log.jsonl                    metrics every ``log_every`` steps

Running ``fit`` again on the same directory resumes each stage from its last checkpoint and skips
finished stages. Under ``torchrun`` every process samples its own batches, gradients are averaged
by DDP, VQ statistics are summed (see engine.quantizers.vq), and rank 0 writes the files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from engine.config import StackConfig, from_dict, to_dict
from engine.errors import ConfigError
from engine.level import Level

from . import stages
from .checkpoint import load_checkpoint, read_meta, save_checkpoint
from .config import StageConfig, TrainConfig
from .data import Folder, SegmentSampler, load_folder
from .distributed import World, setup, state_digest, teardown
from .errors import RunError
from .jsonfile import read_json, write_json_atomic


@dataclass
class Run:
    """Paths of a run directory."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "run.json"

    def checkpoint(self, stage: str) -> Path:
        return self.root / "checkpoints" / f"{stage}.safetensors"

    def codes(self, level: int) -> Path:
        return self.root / "codes" / f"level{level}.npz"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    def stage_meta(self, stage: str) -> dict[str, Any] | None:
        path = self.checkpoint(stage)
        return read_meta(path) if path.is_file() else None

    def read(self) -> dict[str, Any]:
        if not self.manifest.is_file():
            raise RunError(f"{self.root} is not a run directory (no run.json); train one with `fit`")
        return read_json(self.manifest)


def fit(
    cfg: TrainConfig, data_dir: Path, run_dir: Path, *, show_progress: bool = True, command: str = "",
    until: str | None = None, init: str | Path | None = None, reuse: str | Path | None = None,
) -> dict[str, Any]:
    """Train (or resume) every stage, or the stages up to ``until``; returns the run manifest.

    ``init``: a bundle of the same stack whose weights each stage starts from (training goes on
    from a shipped model: the run's ``steps`` are added to the bundle's).
    ``reuse``: another run whose finished level stages this run takes as they are, as far as they
    were trained exactly as this config would (same levels up to that one, stage settings, seed
    and data): an A/B of the levels above shares the levels below.
    """
    names = cfg.stage_names()
    if until is not None and until not in names:
        raise RunError(f"--until {until}: not a stage of this config ({', '.join(names)})")
    names = names[: names.index(until) + 1] if until is not None else names
    untrained = [name for name in names if cfg.stages[name].steps == 0]
    if untrained and init is None:
        raise RunError(f"stages.{untrained[0]}.steps = 0 keeps a stage as the --init bundle has it; "
                       "without --init give it steps")
    world = setup()
    finished = False
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        data = load_folder(data_dir, sample_rate=cfg.stack.sample_rate, mu=cfg.stack.mu,
                           preemphasis=cfg.stack.preemphasis, show_progress=show_progress and world.main)
        if world.main:
            for file, reason in data.skipped:
                print(f"skipped {file}: {reason}", file=sys.stderr, flush=True)
        run = Run(Path(run_dir))
        start = _init_weights(init, cfg) if init is not None else None
        manifest = _open_run(run, cfg, data, world, command, start)
        if reuse is not None and world.main:
            _reuse_stages(Run(Path(reuse)), run, cfg, manifest, names)
        world.barrier()
        sequences: dict[int, list[np.ndarray]] = {0: data.sequences}
        for index, name in enumerate(names):
            src = stages.source(name, cfg.stack)
            if src not in sequences:
                sequences[src] = _load_codes(run, src)
            weights = None if start is None else start[1].get(name)
            model = _train_stage(run, cfg, name, index, sequences[src], world, show_progress, weights)
            k = stages.level_index(name)
            if k is not None and name != names[-1]:  # the next stage reads this level's codes
                sequences[k + 1] = _encode_stage(run, model, k + 1, sequences[src], world, show_progress)
        if world.main and names == cfg.stage_names():
            manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_json_atomic(run.manifest, manifest)
        finished = True
        return manifest
    finally:
        teardown(world, finished)


def _reuse_stages(other: Run, run: Run, cfg: TrainConfig, manifest: dict[str, Any], names: list[str]) -> None:
    """Copy ``other``'s finished level stages (and the codes each produced) that ``cfg`` would train
    the same way; stop at the first that differs. Recorded in the manifest's ``reused``."""
    import shutil

    theirs = other.read()
    same_data = theirs["data"]["fingerprint"] == manifest["data"]["fingerprint"]
    if not same_data or theirs["config"]["seed"] != cfg.seed:
        raise RunError(f"--reuse {other.root}: it was trained on other data or with another seed")
    mine = to_dict(cfg.stack)
    recorded = _same_stack(theirs["config"]["stack"]) or {}
    reused = manifest.setdefault("reused", {})
    for name in names:
        k = stages.level_index(name)
        if k is None or recorded.get("levels", [])[: k + 1] != mine["levels"][: k + 1]:
            break
        if theirs["config"]["stages"].get(name) != cfg.to_dict()["stages"][name]:
            break
        source = other.checkpoint(name)
        if not source.is_file() or not read_meta(source).get("done"):
            break
        if not run.checkpoint(name).is_file():
            run.checkpoint(name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, run.checkpoint(name))
            if other.codes(k + 1).is_file():
                run.codes(k + 1).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(other.codes(k + 1), run.codes(k + 1))
        reused[name] = str(other.root)
    write_json_atomic(run.manifest, manifest)


def _init_weights(init: str | Path, cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, dict]]:
    """The bundle a run starts from (its identity and provenance) and its weights per stage."""
    from engine.bundle import components, load_bundle

    bundle = load_bundle(init)
    if to_dict(_with_allowed_changes(bundle.stack.cfg, cfg.stack)) != to_dict(cfg.stack):
        raise RunError(f"--init {init}: the bundle's stack differs from the config's; a run can only "
                       "start from a bundle of the same shape (or with more cond_context_blocks, "
                       "which start as the identity, or another level sampling)")
    for k, (mine, theirs) in enumerate(zip(bundle.stack.cfg.levels, cfg.stack.levels, strict=True)):
        if mine.sampling != theirs.sampling:  # allowed, and easy to do unawares: say so
            kept, asked = to_dict(mine.sampling), to_dict(theirs.sampling)
            changed = {key: value for key, value in asked.items() if kept[key] != value}
            print(f"--init {init}: level {k + 1} will sample as this config says ({changed}), not as the "
                  f"bundle does ({kept}); to keep the bundle's, --set "
                  f"stack.levels.{k}.sampling.KEY=VALUE for each", file=sys.stderr, flush=True)
    weights = {name: module.state_dict() for name, module in components(bundle.stack).items()}
    origin = {"bundle": bundle.name, "model_hash": bundle.hash,
              "provenance": bundle.meta.get("provenance", {})}
    return origin, weights


def _with_allowed_changes(bundle: StackConfig, config: StackConfig) -> StackConfig:
    """The bundle's stack with what a run may change in it taken from the config: conditioning
    context blocks beyond the bundle's (they start as the identity, see ``engine.level.CondNet``)
    and how each level is sampled (no weights of its own)."""
    if len(bundle.levels) != len(config.levels):
        return bundle
    levels = tuple(dataclasses.replace(
        mine, sampling=theirs.sampling,
        cond_context_blocks=max(mine.cond_context_blocks, theirs.cond_context_blocks))
        for mine, theirs in zip(bundle.levels, config.levels, strict=True))
    return dataclasses.replace(bundle, levels=levels)


def _same_stack(recorded: dict[str, Any]) -> dict[str, Any] | None:
    """A run's recorded stack as this version writes it (settings added since take their defaults,
    which are what the run was trained with); None if this version cannot read it."""
    try:
        return to_dict(from_dict(StackConfig, recorded, "stack"))
    except ConfigError:
        return None


def _open_run(run: Run, cfg: TrainConfig, data: Folder, world: World, command: str,
              start: tuple[dict[str, Any], dict[str, dict]] | None = None) -> dict[str, Any]:
    described = data.describe()
    origin = None if start is None else start[0]
    if run.manifest.is_file():
        manifest = run.read()
        if manifest.get("init", {}).get("model_hash") != (origin or {}).get("model_hash"):
            raise RunError(f"{run.root} was started from another --init bundle (or none); use the same "
                           "--init or a new --run directory")
        old = manifest["config"]
        if _same_stack(old["stack"]) != to_dict(cfg.stack) or old["seed"] != cfg.seed:
            raise RunError(
                f"{run.root} was started with another stack or seed; use a new --run directory "
                "(only [stages.*] settings may change when resuming)"
            )
        if manifest["data"]["fingerprint"] != described["fingerprint"]:
            raise RunError(
                f"{run.root} was trained on other data ({manifest['data']['folder']}, "
                f"{manifest['data']['files']} files); use the same --data or a new --run directory"
            )
    else:
        manifest = {"data": described, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "fits": []}
        if origin is not None:
            manifest["init"] = origin
    manifest["config"] = cfg.to_dict()
    manifest["fits"].append({
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "processes": world.size,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    })
    if world.main:
        run.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run.manifest, manifest)
    return manifest


def _lr(stage: StageConfig, step: int) -> float:
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    span = max(1, stage.steps - stage.warmup)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, (step - stage.warmup) / span)))
    return stage.lr_final + (stage.lr - stage.lr_final) * cos


def _train_stage(
    run: Run, cfg: TrainConfig, name: str, index: int, sequences: list[np.ndarray], world: World,
    show_progress: bool, weights: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    stage = cfg.stages[name]
    k = stages.level_index(name)
    if stage.predictor_draws and (k is None or not cfg.stack.levels[k].decoder.lpc_order
                                  or cfg.stack.levels[k].decoder.lpc_source != "past"):
        raise RunError(f"stages.{name}.predictor_draws needs a level whose decoder reads a linear "
                       "prediction of its past (decoder.lpc_order > 0, lpc_source = \"past\")")
    torch.manual_seed(cfg.seed * 1000 + index)
    model = stages.build(name, cfg.stack)
    if weights is not None:  # --init: start from a bundle's weights (a checkpoint, if any, wins)
        missing, unexpected = model.load_state_dict(weights, strict=False)
        grown = [key for key in missing if key.startswith(Level.GROWABLE)]
        if unexpected or len(grown) != len(missing):
            raise RunError(f"--init: stage {name} does not fit the bundle's weights "
                           f"(missing {sorted(set(missing) - set(grown))[:3]}, unexpected {unexpected[:3]})")
        if grown and world.main:
            blocks = len({key.split(".")[2] for key in grown})  # cond_net.context.<block>.…
            print(f"{name}: {blocks} conditioning context block(s) new in this run, "
                  "starting as the identity", file=sys.stderr, flush=True)
    if stage.freeze_codes:
        model.freeze_codes()
    model = model.to(world.device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=stage.lr)
    sampler = SegmentSampler(sequences, segment=stage.segment, batch=stage.batch,
                             seed=np.random.SeedSequence(cfg.seed, spawn_key=(index, world.rank)))
    meta: dict[str, Any] = {"stage": name, "step": 0, "done": False, "seconds": 0.0}
    path = run.checkpoint(name)
    if path.is_file():
        if read_meta(path).get("freeze_codes", False) != stage.freeze_codes:
            raise RunError(f"{name}'s checkpoint was trained with freeze_codes = "
                           f"{not stage.freeze_codes}; resume with the same setting or use a new --run")
        meta = load_checkpoint(path, model, optimizer)
        states = meta.get("data_states", [])
        if len(states) == world.size:
            sampler.state = states[world.rank]
    if meta["done"] and meta["step"] >= stage.steps:
        return model.eval()
    if meta["done"]:  # more steps were asked of a finished stage
        later = [n for n in cfg.stage_names()[index + 1:] if run.checkpoint(n).is_file()]
        k = stages.level_index(name)
        if later and k is not None:
            raise RunError(f"{name} is finished and {', '.join(later)} were trained on its codes; "
                           "train longer in a new --run directory")
        if k is not None and world.main:
            run.codes(k + 1).unlink(missing_ok=True)
    meta["done"], meta["freeze_codes"] = False, stage.freeze_codes
    net: nn.Module = model
    if world.active:
        ids = [world.device.index] if world.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    model.train()
    bar = tqdm(total=stage.steps, initial=meta["step"], desc=name, unit="step",
               disable=not (show_progress and world.main), dynamic_ncols=True)
    step, started, last_save = meta["step"], time.monotonic(), time.monotonic()
    seconds_before = meta["seconds"]
    window = _Window()
    while step < stage.steps:
        for group in optimizer.param_groups:
            group["lr"] = _lr(stage, step)
        x = torch.from_numpy(sampler.next()).to(world.device)
        inputs = None
        if stage.input_noise > 0 and stages.source(name, cfg.stack) == 0:  # audio: classes are ordered
            rng = torch.Generator().manual_seed(((cfg.seed * 1000 + index) * 64 + world.rank) * 10**6 + step)
            inputs = stages.noisy(x.cpu(), stages.input_classes(name, cfg.stack), stage.input_noise,
                                  rng).to(world.device)
        drawn = None
        if stage.predictor_draws:  # (a stream of its own: the noise's seeds are taken)
            seed = np.random.SeedSequence([cfg.seed, index, world.rank, step, 1]).generate_state(1)[0]
            rows = max(1, round(stage.predictor_draws_share * x.shape[0]))
            drawn = model.one_step_draws(x, torch.Generator().manual_seed(int(seed)),
                                         as_sampled=stage.predictor_draws_as_sampled, rows=rows)
        result = stages.step(name, net, x, inputs, drawn)
        optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
        optimizer.step()
        step += 1
        window.add(result, x.numel() * world.size)
        bar.update(1)
        if step % stage.log_every == 0 or step == stage.steps:
            record = window.flush(name, step, optimizer.param_groups[0]["lr"])
            bar.set_postfix_str(_postfix(record), refresh=False)
            if world.main:
                with open(run.log, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
        timed = time.monotonic() - last_save > stage.checkpoint_seconds
        stopping = world.agree(STOP.is_set())
        if step % stage.checkpoint_every == 0 or step == stage.steps or world.agree(timed) or stopping:
            meta.update(step=step, done=step == stage.steps,
                        seconds=round(seconds_before + time.monotonic() - started, 1))
            _save(run, name, model, optimizer, meta, sampler, world)
            last_save = time.monotonic()
        if stopping:
            bar.close()
            raise KeyboardInterrupt(f"stopped at {name} step {step}; its checkpoint is written")
    bar.close()
    if not meta["done"]:  # its steps were cut to where its checkpoint stood: that is its end
        meta.update(step=step, done=True)
        _save(run, name, model, optimizer, meta, sampler, world)
    if world.active:
        digests = world.gather(state_digest(model))
        if len(set(digests)) != 1:
            raise RunError(f"stage {name}: replicas diverged ({digests})")
        if world.main:
            with open(run.log, "a") as fh:
                fh.write(json.dumps({"stage": name, "replica_digests": digests}) + "\n")
    return model.eval()


STOP = threading.Event()  # set by SIGTERM / Ctrl-C (see stop_on_signals): checkpoint, then stop


def stop_on_signals() -> None:
    """Make SIGTERM and Ctrl-C end training after the current step, its checkpoint written."""
    def request(signum: int, frame: Any) -> None:
        if STOP.is_set():  # asked twice: stop now
            raise KeyboardInterrupt
        STOP.set()
        print(f"\nstopping after this step (signal {signum}); again to stop at once", file=sys.stderr,
              flush=True)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request)


def _save(run: Run, name: str, model: nn.Module, optimizer: torch.optim.Optimizer,
          meta: dict[str, Any], sampler: SegmentSampler, world: World) -> None:
    meta["data_states"] = world.gather(sampler.state)
    if world.main:
        save_checkpoint(run.checkpoint(name), model, optimizer, meta)
    world.barrier()


class _Window:
    """Running means of the metrics between two log lines."""

    def __init__(self) -> None:
        self.rows: list[stages.StepResult] = []
        self.elements, self.since = 0, time.monotonic()

    def add(self, result: stages.StepResult, elements: int) -> None:
        result.loss = result.loss.detach()  # keep the number, free the graph
        self.rows.append(result)
        self.elements += elements

    def flush(self, name: str, step: int, lr: float) -> dict[str, Any]:
        rows, elapsed = self.rows, max(1e-9, time.monotonic() - self.since)
        record: dict[str, Any] = {
            "stage": name,
            "step": step,
            "loss": round(float(np.mean([float(r.loss) for r in rows])), 5),
            "bits": round(float(np.mean([r.bits for r in rows])), 4),
            "lr": lr,
            "elements_per_s": round(self.elements / elapsed),
        }
        if rows[0].usage is not None:
            record["usage"] = round(float(np.mean([r.usage for r in rows])), 4)
            record["perplexity"] = round(float(np.mean([r.perplexity for r in rows])), 1)
        self.__init__()
        return record


def _postfix(record: dict[str, Any]) -> str:
    text = f"loss {record['loss']:.3f} bits {record['bits']:.3f}"
    if "usage" in record:
        text += f" use {record['usage']:.0%} ppl {record['perplexity']:.0f}"
    return text + f" {record['elements_per_s']:,}/s"


def _encode_stage(run: Run, model: nn.Module, level: int, sequences: list[np.ndarray], world: World,
                  show_progress: bool) -> list[np.ndarray]:
    """Encode the stage's training data with level ``level`` (once; rank 0 writes it)."""
    path = run.codes(level)
    if world.main and not path.is_file():
        label = f"encode level {level}" if show_progress else None
        codes = stages.encode_sequences(model, sequences, label=label, should_stop=STOP.is_set)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part.npz")
        np.savez(tmp, codes=np.concatenate(codes), lengths=np.array([len(c) for c in codes]))
        os.replace(tmp, path)
    world.barrier()
    return _load_codes(run, level)


def _load_codes(run: Run, level: int) -> list[np.ndarray]:
    path = run.codes(level)
    if not path.is_file():
        raise RunError(f"{path} is missing: level {level} has not been trained in this run")
    with np.load(path, allow_pickle=False) as npz:
        flat, lengths = npz["codes"], npz["lengths"]
    return np.split(flat, np.cumsum(lengths)[:-1])
