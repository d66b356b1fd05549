"""The backward-adaptive linear predictor and the decoders centred on it."""

import dataclasses

import numpy as np
import pytest
import torch

from engine import lpc, mulaw
from engine.bundle import load_bundle, save_bundle
from engine.config import NetConfig, SamplingConfig, StackConfig
from engine.errors import ConfigError
from engine.fastpath import FastStepper
from engine.level import Level
from engine.npstep import NumpyStepper
from engine.sampling import pick
from engine.stack import Stack
from tests.tiny import TINY_NET, make_net, tiny_level


def piano_like(seconds: float = 0.6, rate: int = 8000, seed: int = 0) -> np.ndarray:
    """Decaying partials with a little noise, as μ-law classes."""
    t = np.arange(int(seconds * rate)) / rate
    x = sum(0.3 / k * np.sin(2 * np.pi * 196 * k * t) for k in range(1, 5)) * np.exp(-2 * t)
    x = x + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return mulaw.encode_np(x)


@pytest.mark.parametrize("gamma", [1.0, 0.98])
def test_step_by_step_predictions_equal_the_whole_sequence_ones_bit_for_bit(gamma):
    classes = piano_like()
    _, u, c = lpc.predict(classes, 16, gamma)
    tracker = lpc.Tracker(2, 16, gamma)
    both = np.stack([classes, classes[::-1].copy()])
    _, u_rev, c_rev = lpc.predict(both[1], 16, gamma)
    for t in range(len(classes)):
        ut, ct, _ = tracker.step(t, None if t == 0 else both[:, t - 1])
        assert ut[0] == u[t] and ct[0] == c[t] and ut[1] == u_rev[t] and ct[1] == c_rev[t]


def test_a_primed_tracker_continues_like_one_that_stepped_through_the_prefix():
    classes = piano_like()[None]
    primed, stepped = lpc.Tracker(1, 32), lpc.Tracker(1, 32)
    primed.prime(classes[:, :700])
    for t in range(700):
        stepped.step(t, None if t == 0 else classes[:, t - 1])
    for t in range(700, 900):
        a, b = primed.step(t, classes[:, t - 1]), stepped.step(t, classes[:, t - 1])
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_wider_bandwidth_pulls_every_pole_of_the_predictor_towards_the_centre():
    classes = piano_like()[None]
    sharp, wide = lpc.Tracker(1, 16), lpc.Tracker(1, 16, 0.98)
    for t in range(lpc.BLOCK * 9 + 1):  # refitted after a full window of the tone
        sharp.step(t, None if t == 0 else classes[:, t - 1])
        wide.step(t, None if t == 0 else classes[:, t - 1])
    assert np.allclose(wide.coef[0], sharp.coef[0] * 0.98 ** np.arange(1, 17))

    def radius(a):  # the largest pole radius of 1 - Σ a_i z^-(i+1)
        return np.abs(np.roots(np.concatenate([[1.0], -a]))).max()

    assert radius(wide.coef[0]) == pytest.approx(0.98 * radius(sharp.coef[0]), rel=1e-6)
    assert not np.array_equal(lpc.predict(classes[0], 16, 0.98)[0], lpc.predict(classes[0], 16)[0])
    with pytest.raises(ConfigError, match="lpc_bandwidth"):
        SamplingConfig(lpc_bandwidth=0.5)


def test_the_loudness_gate_marks_loud_windows_and_widens_only_their_predictor():
    tone = piano_like(seconds=1.2)  # decays by 21 dB: loud, then under the gate's -30 dBFS
    quiet = mulaw.encode_np(mulaw.decode_np(tone) * 0.01)
    gated, sharp, wide = lpc.Tracker(2, 16, 1.0, -30.0, 0.98), lpc.Tracker(2, 16), lpc.Tracker(2, 16, 0.98)
    both = np.stack([tone, quiet])
    seen = set()
    for t in range(len(tone)):
        prev = None if t == 0 else both[:, t - 1]
        for tracker in (gated, sharp, wide):
            tracker.step(t, prev)
        if t % lpc.BLOCK == 0:
            window = lpc.LEVELS[both[:, max(0, t - lpc.WINDOW):t]]
            loud = np.sum(window ** 2, axis=1) / lpc.WINDOW > 1e-3
            assert np.array_equal(gated.loud[:, 0], loud)
            for row in range(2):
                assert np.array_equal(gated.coef[row], (wide if loud[row] else sharp).coef[row])
                seen.add((row, bool(loud[row])))
    assert seen == {(0, True), (0, False), (1, False)}  # the tone crosses the gate, its quiet copy never


def test_the_predictor_uses_only_the_past():
    classes = piano_like()
    changed = classes.copy()
    changed[500:] = 128
    a, b = lpc.predict(classes, 32)[0], lpc.predict(changed, 32)[0]
    assert np.array_equal(a[:501], b[:501]) and not np.array_equal(a[501:], b[501:])


def test_a_pure_tone_is_nearly_free_and_white_noise_costs_its_histogram_entropy():
    t = np.arange(32000) / 16000
    tone = mulaw.encode_np(0.3 * np.sin(2 * np.pi * 440 * t))
    noise = mulaw.encode_np(np.clip(0.2 * np.random.default_rng(0).standard_normal(32000), -1, 1))
    hist = np.bincount(noise, minlength=256) / len(noise)
    entropy = -(hist[hist > 0] * np.log2(hist[hist > 0])).sum()
    assert lpc.reference_nll(tone, 32) < 2.0  # of 8 bits: the prediction is within a class or two
    assert abs(lpc.reference_nll(noise, 32) - entropy) < 0.25
    assert lpc.reference_nll(tone, 32) < lpc.reference_nll(tone, 2)


def test_centred_nets_take_audio_and_only_level_one_may_set_it():
    with pytest.raises(ValueError, match="μ-law audio"):
        make_net(4, 4, classes=32, lpc_order=8)
    level = tiny_level()
    upper = tiny_level(strides=(2,))
    bad = NetConfig(residual=8, skip=16, layers=4, cycle=4, lpc_order=8)
    with pytest.raises(ConfigError, match="only level 1"):
        StackConfig(levels=(level, upper), prior=bad)
    StackConfig(levels=(tiny_level(),), prior=TINY_NET)


def _teacher_forced(step, classes):
    return np.stack([step(None if t == 0 else classes[:, t - 1]) for t in range(classes.shape[1])], 1)


@pytest.mark.parametrize(("batch", "residual", "centre"),  # each value of each with each other's
                         [(1, 8, "classes"), (3, 32, "input"), (9, 8, "input"), (9, 32, "classes"),
                          (1, 32, "input")])
def test_centred_logits_agree_across_the_parallel_torch_numpy_and_fast_paths(batch, residual, centre):
    net, cond, x, paths = centred_paths(batch, residual, centre, 1.0)
    with torch.no_grad():
        full = net(torch.from_numpy(x), cond)
        nll = float(net(torch.from_numpy(x), cond, nll=True))
    assert nll == pytest.approx(float(torch.nn.functional.cross_entropy(full, torch.from_numpy(x))), rel=1e-5)
    for logits in paths:
        assert np.abs(logits - full.permute(0, 2, 1).numpy()).max() < 1e-4


def test_sampled_with_a_wider_predictor_bandwidth_the_paths_agree_and_the_logits_move():
    # training fits the sharp predictor (the parallel path); sampling may widen it (SamplingConfig)
    net, cond, x, (torch_wide, numpy_wide, fast_wide) = centred_paths(3, 8, "input", 0.98)
    for logits in (torch_wide, numpy_wide):
        assert np.abs(logits - fast_wide).max() < 1e-4
    with torch.no_grad():
        sharp = net(torch.from_numpy(x), cond).permute(0, 2, 1).numpy()
    first_refit = lpc.BLOCK  # before it, both predictors are zero
    assert np.abs(fast_wide[:, :first_refit] - sharp[:, :first_refit]).max() < 1e-4
    assert np.abs(fast_wide[:, first_refit:] - sharp[:, first_refit:]).max() > 1e-2


def centred_paths(batch: int, residual: int, centre: str, bandwidth: float):
    """A centred net, its conditioning, a sequence the fast path drew with ``bandwidth``, and the
    torch, numpy and fast paths' teacher-forced logits (B, T, 256) along it."""
    net = make_net(6, 3, cond=5, hop=4, classes=256, residual=residual, lpc_order=16, lpc_centre=centre)
    length = lpc.WINDOW + 2 * lpc.BLOCK + 50  # past the first refit that sees a full window
    cond = torch.randn(batch, 5, length // 4 + 1, generator=torch.Generator().manual_seed(1))
    u = np.random.default_rng(batch).random((length, batch), dtype=np.float32)
    fast_logits = np.empty((batch, length, 256), np.float32)
    def state():
        return net.incremental(batch, cond, sampling=SamplingConfig(lpc_bandwidth=bandwidth))

    x = FastStepper(state()).run(None, u, 1.0, 0.95, logits_out=fast_logits)
    stepped = state()
    with torch.inference_mode():
        torch_logits = _teacher_forced(
            lambda p: stepped.step(None if p is None else torch.from_numpy(p)).numpy(), x)
    numpy_logits = _teacher_forced(NumpyStepper(state()).step, x)
    return net, cond, x, (torch_logits, numpy_logits, fast_logits)


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.9)])
def test_centred_fast_and_numpy_draws_are_the_same_and_hand_over_mid_sequence(temperature, top_p):
    net = make_net(4, 4, cond=5, hop=4, classes=256, lpc_order=8)
    # The two paths round differently (~1e-6 in the logits), so a draw can differ where two classes'
    # probabilities tie to rounding: common in a fresh net's near-uniform output (3 nets in 8 differ
    # within 3000 steps), vanishingly rare once the output is as peaked as a trained net's (top class
    # 0.4 on average, as here: 0 in 24).
    with torch.no_grad():
        net.head2.weight.mul_(30)
    cond = torch.randn(2, 5, 1000, generator=torch.Generator().manual_seed(3))
    u = np.random.default_rng(5).random((3000, 2), dtype=np.float32)
    fast = FastStepper(net.incremental(2, cond)).run(None, u, temperature, top_p)
    slow = NumpyStepper(net.incremental(2, cond)).run(None, u, temperature, top_p)
    assert np.array_equal(fast, slow)
    state = net.incremental(2, cond)  # the fast path, then numpy from the same tracker and rings
    first = FastStepper(state).run(None, u[:1700], temperature, top_p)
    second = NumpyStepper(state).run(first[:, -1], u[1700:], temperature, top_p)
    assert np.array_equal(np.concatenate([first, second], 1), slow)


def test_loud_rows_draw_with_the_loud_settings_and_every_path_draws_the_same():
    net = make_net(4, 4, cond=5, hop=4, classes=256, lpc_order=8)
    with torch.no_grad():  # a trained net's peaked output (see the test above)
        net.head2.weight.mul_(30)
    length = lpc.WINDOW + 12 * lpc.BLOCK
    cond = torch.randn(2, 5, length // 4 + 1, generator=torch.Generator().manual_seed(3))
    u = np.random.default_rng(5).random((length, 2), dtype=np.float32)
    plain = FastStepper(net.incremental(2, cond)).run(None, u, 1.0, 0.95)
    # the gate at the median loudness of the plain draw's windows: some blocks fall on each side
    power = [np.mean(lpc.LEVELS[plain[:, t - lpc.WINDOW:t]] ** 2)
             for t in range(lpc.WINDOW, length, lpc.BLOCK)]
    own = SamplingConfig(loud_db=10 * np.log10(np.median(power)), loud_temperature=0.5, loud_top_p=0.8,
                         loud_lpc_bandwidth=0.98)
    quiet, loud = own.draw(1.0, 0.95)
    logits = np.empty((2, length, 256), np.float32)
    fast = FastStepper(net.incremental(2, cond, sampling=own)).run(None, u, *quiet, loud, logits_out=logits)
    slow = NumpyStepper(net.incremental(2, cond, sampling=own)).run(None, u, *quiet, loud)
    assert np.array_equal(slow, fast)
    state, flags = net.incremental(2, cond, sampling=own), []
    with torch.inference_mode():
        for t in range(length):
            state.step(None if t == 0 else torch.from_numpy(fast[:, t - 1]))
            flags.append(state.loud_rows().copy())
            rows = torch.from_numpy(flags[-1])
            draw = torch.where(rows, pick(torch.from_numpy(logits[:, t]), torch.from_numpy(u[t]), *loud),
                               pick(torch.from_numpy(logits[:, t]), torch.from_numpy(u[t]), *quiet))
            assert np.array_equal(draw.numpy(), fast[:, t])
    flags = np.array(flags)
    assert flags.any() and not flags.all()
    assert not np.array_equal(fast, plain)


def test_a_stack_renders_its_levels_loudness_gate_alike_on_every_sampler():
    gate = SamplingConfig(top_p=1.0, loud_db=-60.0, loud_temperature=0.4, loud_top_p=0.9,
                          loud_lpc_bandwidth=0.99)
    centred = dataclasses.replace(TINY_NET, lpc_order=8)
    level = dataclasses.replace(tiny_level(), decoder=centred)
    stack = Stack(StackConfig(sample_rate=8000, levels=(level,), prior=TINY_NET)).eval()
    plain = stack.sample(0.5, seed=3)
    stack.cfg = dataclasses.replace(stack.cfg, levels=(dataclasses.replace(level, sampling=gate),))
    renders = []
    for sampler in ("fast", "numpy", "torch"):
        stack.sampler = sampler
        renders.append(stack.sample(0.5, seed=3))
    assert np.array_equal(renders[0], renders[1]) and np.array_equal(renders[0], renders[2])
    assert not np.array_equal(renders[0], plain)
    with pytest.raises(ConfigError, match="loud_db needs a decoder whose predictor fits the past"):
        dataclasses.replace(tiny_level(), sampling=gate)
    with pytest.raises(ConfigError, match="need loud_db"):
        SamplingConfig(loud_temperature=0.4)
    with pytest.raises(ConfigError, match=r"loud_db must be in \[-120, 0\] dBFS"):
        SamplingConfig(loud_db=3.0)


def test_reflection_coefficients_give_a_stable_predictor_equal_to_the_step_up_recursion():
    k = torch.rand(4, 12, generator=torch.Generator().manual_seed(0)) * 1.98 - 0.99
    a = lpc.predictor_from_reflections(k)
    for row, ks in zip(a.numpy(), k.numpy(), strict=True):
        ref = np.zeros(0)
        for m, km in enumerate(ks.astype(np.float64)):
            ref = np.concatenate([ref - km * ref[::-1], [km]]) if m else np.array([km])
        assert np.allclose(row, ref, atol=1e-5)
        assert np.abs(np.roots(np.concatenate([[1.0], -row]))).max() < 1.0


def test_code_predictions_step_by_step_equal_the_whole_sequence_ones():
    classes = torch.from_numpy(np.stack([piano_like(), piano_like(seed=1)]))[:, :800]
    coef = torch.randn(2, 6, 100, generator=torch.Generator().manual_seed(2)) * 0.2
    u, c = lpc.centre_torch(lpc.predict_from_codes(classes, coef, 8))
    tracker = lpc.CodeTracker(coef.permute(2, 0, 1).numpy(), 8)
    for t in range(800):
        ut, ct, _ = tracker.step(t, None if t == 0 else classes[:, t - 1].numpy())
        assert np.allclose(ut, u[:, t].numpy(), atol=1e-4) and np.array_equal(ct, c[:, t].numpy())


def code_centred_level(seed: int = 0, centre: str = "classes") -> Level:
    torch.manual_seed(seed)
    decoder = NetConfig(residual=8, skip=16, layers=4, cycle=4, lpc_order=8, lpc_source="codes",
                        lpc_centre=centre)
    cfg = dataclasses.replace(tiny_level("argmax"), decoder=decoder)
    return Level(cfg, input_classes=256).eval()


@pytest.mark.parametrize("batch", [1, 3])
def test_code_centred_logits_agree_across_the_parallel_torch_numpy_and_fast_paths(batch):
    level = code_centred_level()
    length = 600
    codes = torch.randint(0, 16, (batch, length // level.hop), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        cond = level.condition(codes)
        coef = level.lpc_coefficients(cond)
    u = np.random.default_rng(batch).random((length, batch), dtype=np.float32)
    fast_logits = np.empty((batch, length, 256), np.float32)
    state = level.decoder.incremental(batch, cond, lpc_coef=coef)
    x = FastStepper(state).run(None, u, 1.0, 1.0, logits_out=fast_logits)
    with torch.no_grad():
        full = level.decode_logits(torch.from_numpy(x), codes).permute(0, 2, 1).numpy()
    state = level.decoder.incremental(batch, cond, lpc_coef=coef)
    with torch.inference_mode():
        torch_logits = _teacher_forced(
            lambda p: state.step(None if p is None else torch.from_numpy(p)).numpy(), x)
    stepper = NumpyStepper(level.decoder.incremental(batch, cond, lpc_coef=coef))
    numpy_logits = _teacher_forced(stepper.step, x)
    for logits in (torch_logits, numpy_logits, fast_logits):
        assert np.abs(logits - full).max() < 1e-4


def test_a_code_centred_level_trains_its_predictor_and_a_stack_with_it_round_trips(tmp_path):
    level = code_centred_level().train()
    x = torch.from_numpy(np.stack([piano_like(1.0), piano_like(1.0, seed=1)]))[:, :4096]
    out = level(x)
    out.loss.backward()
    assert level.lpc_head.weight.grad.abs().sum() > 0  # the residual and the NLL reach the predictor
    cfg = StackConfig(sample_rate=8000, levels=(level.cfg,), prior=TINY_NET)
    stack = Stack(cfg).eval()
    audio = stack.sample(0.2, seed=3)
    assert audio.shape == (1, 1600) and np.isfinite(audio).all()
    save_bundle(stack, tmp_path / "b", name="b", trained=False)
    again = load_bundle(tmp_path / "b").stack
    assert np.array_equal(again.sample(0.2, seed=3), audio)


def test_a_logistic_centre_starts_as_a_logistic_coder_and_its_torch_steps_equal_the_parallel_pass():
    level = code_centred_level(centre="logistic")
    codes = torch.randint(0, 16, (2, 100), generator=torch.Generator().manual_seed(4))
    x = torch.from_numpy(np.stack([piano_like(), piano_like(seed=1)]))[:, :400]
    with torch.no_grad():
        cond = level.condition(codes)
        coef = level.lpc_coefficients(cond)
        full = level.decode_logits(x, codes)  # (B, K, T)
        probs = full.softmax(1)
    assert coef.shape == (2, 9, 100) and (coef[:, 8] > 0).all()  # 8 coefficients and a width
    assert torch.allclose(probs.sum(1), torch.ones(2, 400), atol=1e-5)
    state = level.decoder.incremental(2, cond, lpc_coef=coef)
    with torch.inference_mode():
        steps = _teacher_forced(lambda p: state.step(None if p is None else torch.from_numpy(p)).numpy(),
                                x.numpy())
    assert np.abs(steps - full.permute(0, 2, 1).numpy()).max() < 1e-4
    with pytest.raises(ValueError, match="use sampler torch"):
        FastStepper(level.decoder.incremental(2, cond, lpc_coef=coef))
    with pytest.raises(ConfigError, match="lpc_source = codes"):
        NetConfig(lpc_order=8, lpc_centre="logistic")
