import pytest
import torch

from tests.tiny import make_net

LAYOUTS = [  # (layers, cycle)
    (4, 4),
    (6, 3),
    (5, 1),
    (10, 10),
]


def incremental_logits(net, x, cond=None, label=None, prime=0):
    batch, length = x.shape
    state = net.incremental(batch, cond, label)
    out = []
    with torch.inference_mode():
        if prime:
            state.prime(x[:, :prime])
        for t in range(prime, length):
            out.append(state.step(None if t == 0 else x[:, t - 1]))
    return torch.stack(out, dim=2)


@pytest.mark.parametrize(("layers", "cycle"), LAYOUTS)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("conditioning", ["none", "local", "local+global"])
def test_incremental_logits_equal_parallel_forward(layers, cycle, batch, conditioning):
    hop = 4
    net = make_net(layers, cycle, cond=5 if conditioning != "none" else 0, hop=hop,
                   labels=3 if conditioning == "local+global" else 0)
    length = 2 * net.receptive_field + 7
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 32, (batch, length), generator=gen)
    cond = torch.randn(batch, 5, -(-length // hop), generator=gen) if net.cond_proj else None
    label = torch.arange(batch) % 3 if net.global_embed is not None else None
    with torch.no_grad():
        full = net(x, cond, label)
    assert torch.allclose(incremental_logits(net, x, cond, label), full, atol=1e-4)
    # priming from a prefix, then stepping, matches too
    prime = length // 2 + 1
    primed = incremental_logits(net, x, cond, label, prime=prime)
    assert torch.allclose(primed, full[:, :, prime:], atol=1e-4)


def test_forward_is_causal():
    net = make_net(6, 3)
    x = torch.randint(0, 32, (1, 60))
    y = x.clone()
    y[0, 40:] = (y[0, 40:] + 1) % 32
    with torch.no_grad():
        a, b = net(x), net(y)
    # position t sees elements < t only: changing element 40 changes logits from 41 on
    assert torch.equal(a[:, :, :41], b[:, :, :41])
    assert not torch.allclose(a[:, :, 41:], b[:, :, 41:])


def test_receptive_field_matches_layout():
    net = make_net(6, 3)  # dilations 1 2 4 1 2 4
    assert net.receptive_field == 1 + 14
    x = torch.randint(0, 32, (1, 80))
    y = x.clone()
    y[0, 10] = (y[0, 10] + 1) % 32
    with torch.no_grad():
        diff = (net(x) - net(y)).abs().sum(dim=1)[0]
    changed = (diff > 0).nonzero().flatten()
    assert changed.min() == 11 and changed.max() == 10 + net.receptive_field  # RF = 15 positions


def test_local_conditioning_is_constant_within_a_frame_and_used():
    net = make_net(4, 4, cond=5, hop=8)
    x = torch.randint(0, 32, (1, 64))
    cond = torch.randn(1, 5, 8)
    other = cond.clone()
    other[:, :, 3] += 1.0
    with torch.no_grad():
        a, b = net(x, cond), net(x, other)
    changed = ((a - b).abs().sum(dim=1)[0] > 0).nonzero().flatten()
    assert changed.min() == 24  # frame 3 starts at sample 24


def test_missing_conditioning_is_a_clear_error():
    net = make_net(4, 4, cond=5, hop=4)
    with pytest.raises(ValueError, match="locally conditioned"):
        net(torch.zeros(1, 8, dtype=torch.long))
