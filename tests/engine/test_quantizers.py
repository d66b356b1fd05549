import pytest
import torch
from torch import nn

from engine.quantizers import ArgmaxQuantizer, VectorQuantizer, code_stats


def test_vq_gradients_reach_the_encoder_straight_through():
    torch.manual_seed(0)
    encoder = nn.Conv1d(3, 4, 1)
    vq = VectorQuantizer(codes=8, dim=4).train()
    out = vq(encoder(torch.randn(2, 3, 50)))
    (out.quantized.pow(2).sum() + out.loss).backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0


def test_vq_forward_value_is_the_nearest_code():
    torch.manual_seed(0)
    vq = VectorQuantizer(codes=8, dim=4).eval()
    z = torch.randn(2, 4, 30)
    out = vq(z)
    assert torch.allclose(out.quantized, vq.lookup(out.codes), atol=1e-6)
    dist = torch.cdist(z.transpose(1, 2).reshape(-1, 4), vq.codebook)
    assert torch.equal(out.codes.flatten(), dist.argmin(1))


def test_vq_data_init_and_ema_pull_codes_to_the_data():
    torch.manual_seed(0)
    vq = VectorQuantizer(codes=4, dim=2, decay=0.9).train()
    centers = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
    for _ in range(60):
        pts = centers[torch.randint(0, 4, (400,))] + 0.1 * torch.randn(400, 2)
        out = vq(pts.t().unsqueeze(0))
    # every centre ends up owning a code within its cluster
    dist = torch.cdist(centers, vq.codebook).min(dim=1).values
    assert dist.max() < 0.5
    assert out.usage == 1.0 and out.perplexity > 3.5
    assert bool(vq.initialized)


def test_vq_eval_mode_leaves_the_codebook_alone():
    vq = VectorQuantizer(codes=8, dim=4).eval()
    before = vq.codebook.clone()
    vq(torch.randn(2, 4, 30))
    assert torch.equal(before, vq.codebook) and not bool(vq.initialized)


def test_dead_codes_are_restarted_on_encoder_outputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(codes=16, dim=2, decay=0.5, restart_threshold=0.05).train()
    data = lambda: torch.randn(1, 2, 500) * 0.1 + 3.0  # noqa: E731
    vq(data())
    with torch.no_grad():  # push half the codebook far away: nothing will pick those codes
        vq.codebook[8:] = 1000.0
        vq.ema_sum[8:] = 1000.0
    far_before = (vq.codebook.norm(dim=1) > 100).sum().item()
    for _ in range(12):
        vq(data())
    assert far_before == 8
    assert (vq.codebook.norm(dim=1) > 100).sum().item() == 0  # all restarted near the data
    assert (vq.codebook - 3.0).abs().max() < 1.0


def test_argmax_outputs_one_hot_codes_and_passes_gradients():
    torch.manual_seed(0)
    encoder = nn.Conv1d(3, 8, 1)
    amae = ArgmaxQuantizer(codes=8, diversity=0.1)
    out = amae(encoder(torch.randn(2, 3, 40)))
    q = out.quantized.detach()  # one-hot up to the rounding of hard + q - q
    assert torch.allclose(q.sum(dim=1), torch.ones(2, 40))
    assert torch.allclose(q.max(dim=1).values, torch.ones(2, 40))
    assert torch.equal(out.quantized.detach().argmax(dim=1), out.codes)
    (out.quantized * torch.randn_like(out.quantized)).sum().add(out.loss).backward()
    assert encoder.weight.grad.abs().sum() > 0


def test_argmax_diversity_loss_penalises_collapse():
    amae = ArgmaxQuantizer(codes=4, diversity=1.0)
    uniform = torch.eye(4).repeat(1, 5).unsqueeze(0)  # every code used equally, hard
    collapsed = torch.zeros(1, 4, 20)
    collapsed[:, 0] = 1.0
    assert amae(uniform).loss.item() == pytest.approx(0.0, abs=1e-4)
    assert amae(collapsed).loss.item() == pytest.approx((4 - 1) ** 2 + 3 * 1, rel=1e-3)


def test_argmax_diversity_loss_spreads_codes_when_trained():
    torch.manual_seed(0)
    encoder = nn.Conv1d(1, 8, 1)
    amae = ArgmaxQuantizer(codes=8, diversity=1.0)
    opt = torch.optim.Adam(encoder.parameters(), lr=0.05)
    x = torch.randn(4, 1, 100)
    first = amae(encoder(x)).perplexity
    for _ in range(200):
        opt.zero_grad()
        out = amae(encoder(x))
        out.loss.backward()
        opt.step()
    assert out.perplexity > first and out.usage >= 0.5


def test_code_stats():
    usage, perplexity = code_stats(torch.tensor([0, 1, 2, 3]), 8)
    assert usage == 0.5 and perplexity == pytest.approx(4.0)
