import dataclasses

import pytest
import torch

from engine import lpc
from engine.config import SamplingConfig
from engine.level import Level
from tests.tiny import tiny_level


@pytest.mark.parametrize("kind", ["vq", "argmax"])
@pytest.mark.parametrize("strides", [(2, 2), (4,), (2, 3)])
def test_encoder_hop_is_the_product_of_strides(kind, strides):
    level = Level(tiny_level(kind, strides=strides), input_classes=256)
    hop = 1
    for s in strides:
        hop *= s
    assert level.hop == hop
    x = torch.randint(0, 256, (2, hop * 10 + hop - 1))  # a partial trailing frame is dropped
    assert level.encode(x).shape == (2, 10)


@pytest.mark.parametrize("kind", ["vq", "argmax"])
def test_training_pass_reaches_encoder_and_decoder(kind):
    torch.manual_seed(0)
    level = Level(tiny_level(kind), input_classes=256).train()
    out = level(torch.randint(0, 256, (2, 64)))
    assert out.codes.shape == (2, 16)
    assert torch.isfinite(out.loss) and out.nll > 0
    out.loss.backward()
    for name in ("encoder.embed.weight", "encoder.out.weight", "decoder.layers.0.conv.weight",
                 "cond_net.inp.weight"):
        grad = dict(level.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_decoder_uses_the_codes():
    torch.manual_seed(0)
    level = Level(tiny_level("vq"), input_classes=256).eval()
    x = torch.randint(0, 256, (1, 64))
    codes = level.encode(x)
    other = (codes + 1) % level.num_codes
    with torch.no_grad():
        a = level.decoder(x, level.condition(codes))
        b = level.decoder(x, level.condition(other))
    assert not torch.allclose(a, b)


def test_a_few_steps_of_training_lower_the_loss():
    torch.manual_seed(0)
    level = Level(tiny_level("vq"), input_classes=256).train()
    opt = torch.optim.Adam(level.parameters(), lr=1e-2)
    t = torch.arange(256).float()
    x = ((torch.sin(t / 5) * 0.5 + 0.5) * 255).long().repeat(4, 1)
    first = level(x).nll.item()
    for _ in range(50):
        opt.zero_grad()
        out = level(x)
        out.loss.backward()
        opt.step()
    assert out.nll.item() < 0.6 * first


def mel_level() -> Level:
    from dataclasses import replace

    return Level(replace(tiny_level("argmax"), encoder_input="mel", mel_bands=16, mel_window=64),
                 input_classes=256, sample_rate=8000)


def test_a_mel_encoder_trains_and_gives_one_code_per_hop():
    torch.manual_seed(0)
    level = mel_level().train()
    out = level(torch.randint(0, 256, (2, 64 + 3)))
    assert out.codes.shape == (2, 16)
    out.loss.backward()
    for name in ("encoder.inp.weight", "encoder.out.weight", "cond_net.inp.weight"):
        assert dict(level.named_parameters())[name].grad.abs().sum() > 0, name


def test_only_level_1_may_read_mel_frames():
    from dataclasses import replace

    from engine.config import StackConfig
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="only level 1"):
        StackConfig(levels=(tiny_level(), replace(tiny_level(), encoder_input="mel", strides=(2,))))


def test_dilated_encoder_blocks_see_further_with_the_same_weights_shapes():
    from dataclasses import replace

    torch.manual_seed(0)
    plain = Level(replace(tiny_level("argmax"), encoder_blocks=3), input_classes=256).eval()
    dilated = replace(tiny_level("argmax"), encoder_blocks=3, encoder_dilated=True)
    wide = Level(dilated, input_classes=256).eval()
    wide.load_state_dict(plain.state_dict())  # same parameters, only the dilations differ

    def reach(level: Level) -> int:
        """How many frames away from a changed input sample the encoder output changes."""
        x = torch.randint(0, 256, (1, 4 * 64))
        y = x.clone()
        y[0, 128] = (y[0, 128] + 100) % 256
        with torch.no_grad():
            changed = (level.encoder(x) - level.encoder(y)).abs().sum(1)[0] > 1e-6
        frames = torch.nonzero(changed).flatten()
        return int(frames.max() - frames.min())

    assert reach(wide) > reach(plain)


def with_context(blocks: int) -> Level:
    """A tiny argmax level whose conditioning has ``blocks`` context blocks, all of them trained
    away from the identity they start as (random last convolutions)."""
    level = Level(dataclasses.replace(tiny_level("argmax"), cond_context_blocks=blocks), input_classes=32)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for block in level.cond_net.context:
            block.conv2.weight.copy_(0.3 * torch.randn(block.conv2.weight.shape, generator=g))
    return level


@pytest.mark.parametrize("blocks", [0, 3])
def test_argmax_codes_condition_the_decoder_as_their_one_hot_vectors_do(blocks):
    from engine.quantizers import ArgmaxQuantizer

    level = with_context(blocks)
    assert isinstance(level.quantizer, ArgmaxQuantizer)
    codes = torch.randint(0, 16, (3, 41), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        looked_up = level.condition(codes)
        one_hot = level.cond_net(level.quantizer.lookup(codes))
    assert looked_up.shape == one_hot.shape == (3, level.cfg.cond_channels, 41)
    assert torch.allclose(looked_up, one_hot, atol=1e-5)


@pytest.mark.parametrize("blocks", [0, 3])
def test_conditioning_computed_in_chunks_equals_it_computed_at_once(monkeypatch, blocks):
    from engine import level as level_module

    level = with_context(blocks)
    assert level.cond_net.margin == 2 + (2 + 4 + 8 if blocks else 0)
    codes = torch.randint(0, 16, (2, 100), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = level.condition(codes)
        monkeypatch.setattr(level_module, "CONDITION_CHUNK", 7)
        chunked = level.condition(codes)
    assert chunked.shape == whole.shape and torch.allclose(chunked, whole, atol=1e-6)


def test_context_blocks_start_as_the_identity_and_widen_the_view_of_the_codes():
    plain = Level(tiny_level("argmax"), input_classes=32)
    grown = Level(dataclasses.replace(tiny_level("argmax"), cond_context_blocks=2), input_classes=32)
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("cond_net.context.") for k in missing)
    codes = torch.randint(0, 16, (1, 60), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(grown.condition(codes), plain.condition(codes))  # nothing changed yet
        trained = with_context(2)
        changed = codes.clone()
        changed[0, 30] = (codes[0, 30] + 1) % 16
        moved = (trained.condition(changed) - trained.condition(codes)).abs().sum(1)[0] > 0
    frames = torch.nonzero(moved).flatten()
    assert frames.min() == 30 - trained.cond_net.margin and frames.max() == 30 + trained.cond_net.margin


def test_long_audio_is_encoded_in_chunks_to_the_same_codes():
    level = Level(tiny_level("argmax"), input_classes=32)
    x = torch.randint(0, 32, (2, 4 * 300 + 3), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = level.encode(x)
        chunked = level.encode(x, chunk_frames=16)
    assert whole.shape == (2, 300) and torch.equal(chunked, whole)


def test_a_rated_level_pays_for_codes_its_predictor_cannot_foresee():
    import dataclasses

    from engine.config import ConfigError

    level = Level(dataclasses.replace(tiny_level("argmax"), rate=1.0), input_classes=32)
    x = torch.randint(0, 32, (2, 400), generator=torch.Generator().manual_seed(3))
    q = level.quantizer(level.encoder(level.crop(x)))
    cost = level._rate(q)
    cost.backward()
    # the predictor learns from the codes and the encoder is pushed towards foreseeable ones
    assert level.code_prior.head2.weight.grad.abs().sum() > 0
    assert level.encoder.out.weight.grad.abs().sum() > 0
    assert level.decoder.head2.weight.grad is None  # the description length of codes, not of audio
    assert cost.item() > 0
    plain = Level(tiny_level("argmax"), input_classes=32)
    assert plain.code_prior is None and "code_prior.head2.weight" not in plain.state_dict()
    with pytest.raises(ConfigError, match="needs argmax codes"):
        dataclasses.replace(tiny_level("vq"), rate=1.0)


def _lpc_level(kind: str = "vq") -> Level:
    torch.manual_seed(0)
    cfg = tiny_level(kind)
    return Level(dataclasses.replace(cfg, decoder=dataclasses.replace(
        cfg.decoder, lpc_order=8, lpc_centre="input")), input_classes=256).train()


def test_one_step_draws_follow_the_decoders_teacher_forced_distribution():
    level = _lpc_level()
    x = (128 + 60 * torch.sin(torch.arange(200) * 0.3)).long()[None].repeat(2, 1)
    codebook = level.quantizer.state_dict()
    a = level.one_step_draws(x, torch.Generator().manual_seed(1))
    b = level.one_step_draws(x, torch.Generator().manual_seed(1))
    assert a.shape == level.crop(x).shape and torch.equal(a, b)
    part = level.one_step_draws(x, torch.Generator().manual_seed(1), rows=1)  # the first example only
    assert torch.equal(part[1], level.crop(x)[1]) and (part[0] != level.crop(x)[0]).float().mean() > 0.5
    assert all(torch.equal(v, level.quantizer.state_dict()[k]) for k, v in codebook.items())  # unmoved
    # drawn from the decoder's distribution: one made to favour two classes gives them
    with torch.no_grad():
        level.decoder.head2.bias[[40, 200]] += 12.0
    drawn = level.one_step_draws(x, torch.Generator().manual_seed(3))
    share = torch.isin(drawn, torch.tensor([40, 200])).float().mean()
    assert share > 0.9 and 0 < (drawn == 40).float().mean() < share


def test_the_loudness_gate_in_training_marks_what_the_samplers_tracker_marks():
    cfg = dataclasses.replace(_lpc_level().cfg, sampling=SamplingConfig(loud_db=-30.0, loud_temperature=0.5))
    level = Level(cfg, input_classes=256)
    t = torch.arange(3000)
    amp = torch.where((t > 700) & (t < 2100), 90, 3)  # quiet, a loud note, quiet again
    x = (128 + amp * torch.sin(t * 0.2)).long()[None]
    gate = level.loud_positions(x)[0]
    tracker = lpc.Tracker(1, 8, loud_db=-30.0)
    marked = []
    for i in range(x.shape[1]):
        tracker.step(i, None if i == 0 else x[:, i - 1].numpy())
        marked.append(bool(tracker.loud[0, 0]))
    assert gate.tolist() == marked
    assert 0.2 < gate.float().mean() < 0.8  # both kinds of position are there
    plain = Level(_lpc_level().cfg, input_classes=256)
    assert not plain.loud_positions(x).any()  # no gate: nothing is loud


def test_draws_as_sampled_are_sharper_only_where_the_gate_says_loud():
    cfg = dataclasses.replace(_lpc_level().cfg, sampling=SamplingConfig(
        top_p=1.0, loud_db=-30.0, loud_temperature=0.05))
    torch.manual_seed(0)
    level = Level(cfg, input_classes=256).eval()
    with torch.no_grad():
        level.decoder.head2.weight *= 30.0  # an untrained decoder's logits are nearly flat
    t = torch.arange(4000)
    x = (128 + torch.where(t < 2048, 2, 90) * torch.sin(t * 0.2)).long()[None].repeat(2, 1)
    gate = level.loud_positions(level.crop(x))
    best = level.decode_logits(level.crop(x), level.quantizer(level.encoder(level.crop(x))).codes).argmax(1)
    sampled = level.one_step_draws(x, torch.Generator().manual_seed(4), as_sampled=True)
    plain = level.one_step_draws(x, torch.Generator().manual_seed(4))
    assert torch.equal(sampled, level.one_step_draws(x, torch.Generator().manual_seed(4), as_sampled=True))
    assert (sampled == best)[gate].float().mean() > 0.9  # temperature 0.05: nearly the argmax
    assert (plain == best)[gate].float().mean() < 0.5  # temperature 1 spreads
    assert (sampled == best)[~gate].float().mean() < 0.5  # quiet: as at temperature 1


def test_the_predictor_fitted_to_other_audio_changes_only_the_decoders_prediction():
    level = _lpc_level()
    x = (128 + 60 * torch.sin(torch.arange(400) * 0.3)).long()[None].repeat(2, 1)
    torch.manual_seed(5)
    plain = level(x).nll
    torch.manual_seed(5)
    assert torch.allclose(level(x, predictor_past=level.crop(x)).nll, plain)  # the true past: as before
    drawn = level.one_step_draws(x, torch.Generator().manual_seed(2))
    torch.manual_seed(5)
    assert not torch.allclose(level(x, predictor_past=drawn).nll, plain)
