"""The compiled sampler against the torch incremental path and the numpy sampler."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import Cancelled
from engine.fastpath import FastStepper
from engine.npstep import NumpyStepper, pick_np
from engine.sampling import Progress, sample_sequence
from tests.tiny import make_net, make_stack


def run_keeping_logits(stepper, prev, uniforms, temperature, top_p):
    """Classes (B, n) and the logits (B, n, K) they were drawn from."""
    logits = np.empty((stepper.state.batch, uniforms.shape[0], stepper.classes), np.float32)
    return stepper.run(prev, uniforms, temperature, top_p, logits_out=logits), logits


def teacher_forced_logits(net, batch, cond, classes, primer=None):
    """Torch incremental logits when fed ``classes`` (B, n), after an optional primer."""
    state = net.incremental(batch, cond)
    prev = None
    if primer is not None:
        state.prime(primer)
        prev = primer[:, -1]
    out = []
    with torch.inference_mode():
        for t in range(classes.shape[1]):
            out.append(state.step(prev).numpy())
            prev = torch.from_numpy(classes[:, t])
    return np.stack(out, axis=1)  # (B, n, K)


@pytest.mark.parametrize(("layers", "cycle"), [(4, 4), (6, 3), (10, 10)])
@pytest.mark.parametrize("batch", [1, 3, 9])  # 9 rows: blocks of 4 rows and single rows per thread
@pytest.mark.parametrize("conditioned", [False, True])
@pytest.mark.parametrize(("residual", "skip"), [(8, 12), (32, 40)])  # padded to 16 lanes, or not
def test_fast_logits_equal_the_torch_incremental_path(layers, cycle, batch, conditioned, residual, skip):
    net = make_net(layers, cycle, cond=5 if conditioned else 0, hop=4, residual=residual, skip=skip)
    length = net.receptive_field + 40
    gen = torch.Generator().manual_seed(2)
    cond = torch.randn(batch, 5, -(-length // 4), generator=gen) if conditioned else None
    u = np.random.default_rng(layers).random((length, batch), dtype=np.float32)
    classes, logits = run_keeping_logits(FastStepper(net.incremental(batch, cond)), None, u, 1.0, 1.0)
    reference = teacher_forced_logits(net, batch, cond, classes)
    assert np.abs(logits - reference).max() < 1e-4


def test_fast_stepper_continues_a_primed_state_and_hands_back_its_buffers():
    net = make_net(6, 3, cond=5, hop=4)
    x = torch.randint(0, 32, (2, 30), generator=torch.Generator().manual_seed(0))
    cond = torch.randn(2, 5, 30)
    state = net.incremental(2, cond)
    state.prime(x)
    u = np.random.default_rng(1).random((50, 2), dtype=np.float32)
    fast = FastStepper(state)
    first, logits_a = run_keeping_logits(fast, x[:, -1].numpy(), u[:25], 1.0, 1.0)
    with torch.inference_mode():  # the torch path takes over mid-sequence from the same buffers
        torch_logits = state.step(torch.from_numpy(first[:, -1])).numpy()
    reference = teacher_forced_logits(net, 2, cond, np.concatenate([first, first[:, :1]], 1), primer=x)
    assert np.abs(logits_a - reference[:, :25]).max() < 1e-4
    assert np.abs(torch_logits - reference[:, 25]).max() < 1e-4


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.8, 0.9), (1.2, 0.5)])
def test_same_seed_same_samples_as_the_numpy_sampler_for_thousands_of_steps(temperature, top_p):
    net = make_net(6, 3, cond=5, hop=4)
    steps, batch = 3000, 2
    cond = torch.randn(batch, 5, steps // 4 + 1, generator=torch.Generator().manual_seed(3))
    u = np.random.default_rng(4).random((steps, batch), dtype=np.float32)
    fast = FastStepper(net.incremental(batch, cond)).run(None, u, temperature, top_p)
    stepper, last, slow = NumpyStepper(net.incremental(batch, cond)), None, []
    for t in range(steps):
        last = pick_np(stepper.step(last), u[t], temperature, top_p)
        slow.append(last)
    slow = np.stack(slow, axis=1)
    # a float-rounding difference at a CDF boundary would change everything after it: measure where
    first_difference = int(np.argmax((fast != slow).any(axis=0))) if (fast != slow).any() else steps
    assert first_difference == steps, f"the paths part at step {first_difference}"


@pytest.mark.parametrize(("classes", "peak"), [(32, 1.0), (256, 1.0), (256, 30.0)])
@pytest.mark.parametrize(("temperature", "top_p"), [(0.7, 0.8), (1.0, 1.0), (1.3, 0.95)])
def test_the_fast_draw_follows_pick(classes, peak, temperature, top_p):
    # flat logits put most classes in the nucleus, peaked ones a few: both ways of finding it
    net = make_net(2, 2, classes=classes)
    with torch.no_grad():
        net.head2.weight *= peak
    u = np.random.default_rng(5).random((4000, 1), dtype=np.float32)
    drawn, logits = run_keeping_logits(FastStepper(net.incremental(1)), None, u, temperature, top_p)
    assert np.array_equal(drawn[0], pick_np(logits[0], u[:, 0], temperature, top_p))


def test_progress_and_cancel_work_as_on_the_torch_path():
    net = make_net(4, 4)
    seen: list[float] = []
    progress = Progress(5000, seen.append, lambda: len(seen) > 2, interval=0.0)
    with pytest.raises(Cancelled):
        sample_sequence(net.incremental(1), 5000, np.random.default_rng(0), temperature=1.0, top_p=1.0,
                        progress=progress, sampler="fast")
    assert 0 < seen[-1] < 1 and seen == sorted(seen)
    stack = make_stack(2)
    fractions: list[float] = []
    stack.sampler = "fast"
    a = stack.sample(0.05, seed=9, progress=fractions.append)
    stack.sampler = "numpy"
    assert np.array_equal(a, stack.sample(0.05, seed=9)) and fractions[-1] == 1.0


def test_rows_draw_the_same_whatever_the_thread_count():
    net = make_net(6, 3, cond=5, hop=4, residual=32, skip=40)
    cond = torch.randn(9, 5, 200, generator=torch.Generator().manual_seed(6))
    u = np.random.default_rng(7).random((600, 9), dtype=np.float32)
    before, runs = torch.get_num_threads(), []
    try:
        for threads in (1, 2):  # one group of 9 rows, then groups of 4 and 5
            torch.set_num_threads(threads)
            runs.append(FastStepper(net.incremental(9, cond)).run(None, u, 1.0, 1.0))
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(runs[0], runs[1])
    alone = FastStepper(net.incremental(1, cond[4:5])).run(None, u[:, 4:5], 1.0, 1.0)
    assert np.array_equal(alone[0], runs[0][4])  # a row does not depend on its neighbours


def test_weights_start_on_cache_lines():
    # a vector load that straddles two 64-byte lines costs two: batch 1 ran ~1.5x slower so
    stepper = FastStepper(make_net(6, 3, residual=32, skip=40).incremental(1))
    for name in ("embed", "w_cur", "w_past", "w_rs", "b_res", "b_skip", "w_h1", "b_h1", "w_h2", "b_h2"):
        assert getattr(stepper, name).ctypes.data % 64 == 0, name


def test_the_compiled_loop_is_cached_per_version_of_every_source_it_inlines(tmp_path, monkeypatch):
    import shutil

    import numba

    from engine import jitcache

    here = Path(jitcache.__file__).parent
    for name in jitcache.SOURCES:
        shutil.copy(here / name, tmp_path / name)
    before = jitcache.cache_dir(tmp_path)
    assert before == jitcache.cache_dir(here)
    assert str(before) == numba.config.CACHE_DIR or os.environ.get("NUMBA_CACHE_DIR")
    (tmp_path / "simd.py").write_text((tmp_path / "simd.py").read_text() + "\n# edited\n")
    assert jitcache.cache_dir(tmp_path) != before  # an edit to an inlined file recompiles
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert jitcache.cache_dir(here).is_relative_to(tmp_path / "cache" / "wavestack" / "numba")


def test_an_unwritable_cache_folder_compiles_into_a_private_one_and_says_so(tmp_path):
    import subprocess
    import sys

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # a cache home that is a file: no folder can be made in it, even by root
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(blocker)
    code = ("import numpy as np, numba\nfrom engine import lpc\nprint(numba.config.CACHE_DIR)\n"
            "print(lpc.predict(np.arange(300) % 7 + 100, 4)[2][-1])")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=600)
    assert done.returncode == 0, done.stderr[-500:]
    folder, value = done.stdout.split()
    assert "cannot write the compiled-code cache" in done.stderr and folder in done.stderr
    assert not Path(folder).is_relative_to(blocker) and not Path(folder).exists()  # removed at exit
    assert 0 <= int(value) < 256


@pytest.mark.parametrize("window", [7, 64])
def test_frame_biases_held_a_window_at_a_time_give_every_sampler_the_same_steps(monkeypatch, window):
    """A long render holds its gate biases a window of frames at a time (a 600-s track held them
    all: gigabytes); steps that cross windows, in one call of the compiled loop or many, and a
    primed state, must read the same biases as a state that holds them all."""
    from engine import wavenet

    net = make_net(6, 3, cond=5, hop=4)
    steps, batch = 600, 2
    cond = torch.randn(batch, 5, steps // 4 + 20, generator=torch.Generator().manual_seed(5))
    x = torch.randint(0, 32, (batch, 37), generator=torch.Generator().manual_seed(6))
    u = np.random.default_rng(7).random((steps, batch), dtype=np.float32)

    def primed(state):
        state.prime(x)
        return state

    first = x[:, -1].numpy()
    whole = run_keeping_logits(FastStepper(primed(net.incremental(batch, cond))), first, u, 1.0, 1.0)
    monkeypatch.setattr(wavenet, "BIAS_WINDOW", window)
    state = primed(net.incremental(batch, cond))
    fast = FastStepper(state)
    parts = [run_keeping_logits(fast, x[:, -1].numpy(), u[:250], 1.0, 1.0)]
    parts.append(run_keeping_logits(fast, parts[0][0][:, -1], u[250:], 1.0, 1.0))
    assert state.biases.window.shape[0] <= window < cond.shape[2]  # never the whole track
    classes, logits = np.concatenate([p[0] for p in parts], 1), np.concatenate([p[1] for p in parts], 1)
    assert np.array_equal(classes, whole[0]) and np.abs(logits - whole[1]).max() < 1e-5
    stepper, last, slow = NumpyStepper(primed(net.incremental(batch, cond))), x[:, -1].numpy(), []
    for t in range(steps):
        last = pick_np(stepper.step(last), u[t], 1.0, 1.0)
        slow.append(last)
    assert np.array_equal(np.stack(slow, axis=1), classes)
    reference = teacher_forced_logits(net, batch, cond, classes, primer=x)  # the torch path, windowed
    assert np.abs(logits - reference).max() < 1e-4


@pytest.mark.parametrize("conditioned", [False, True])
def test_a_long_primer_primes_from_its_last_receptive_field_as_stepping_through_it_does(conditioned):
    net = make_net(6, 3, cond=5 if conditioned else 0, hop=4)
    batch, length = 2, 10 * net.receptive_field + 3
    x = torch.randint(0, 32, (batch, length), generator=torch.Generator().manual_seed(8))
    cond = torch.randn(batch, 5, length // 4 + 5, generator=torch.Generator().manual_seed(9)) if conditioned \
        else None
    primed = net.incremental(batch, cond)
    primed.prime(x)
    stepped, prev = net.incremental(batch, cond), None
    with torch.inference_mode():
        for t in range(length):
            stepped.step(prev)
            prev = x[:, t]
        after_steps = stepped.step(prev)
        after_prime = primed.step(x[:, -1])
    assert torch.allclose(primed.ring, stepped.ring, atol=1e-5)  # every slot holds the same tap
    assert torch.allclose(after_prime, after_steps, atol=1e-4)
