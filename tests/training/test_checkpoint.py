"""Training checkpoints of older layouts resume exactly in this one."""

import torch

from engine.wavenet import ResidualLayer, WaveNet
from training.checkpoint import load_checkpoint, save_checkpoint


def net() -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(classes=16, residual=8, skip=8, layers=3, cycle=3)


def train(model: WaveNet, optimizer: torch.optim.Optimizer, steps: int) -> None:
    x = torch.randint(0, 16, (2, 40), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), x).backward()
        optimizer.step()


def test_a_checkpoint_whose_last_layer_had_a_residual_conv_resumes_exactly(tmp_path):
    old = net()  # the layout before: the last layer also had a residual conv, registered before its skip
    layer = ResidualLayer(residual=8, skip=8, dilation=old.layers[-1].dilation)
    layer.conv, layer.skip = old.layers[-1].conv, old.layers[-1].skip
    old.layers[-1] = layer
    names = [n for n, _ in old.named_parameters()]
    assert names[names.index("layers.2.conv.weight"):][:4] == [
        "layers.2.conv.weight", "layers.2.conv.bias", "layers.2.res.weight", "layers.2.res.bias"]
    old_opt = torch.optim.Adam(old.parameters(), lr=1e-2)
    train(old, old_opt, 3)
    save_checkpoint(tmp_path / "ckpt.safetensors", old, old_opt, {"step": 3})

    new = net()
    new_opt = torch.optim.Adam(new.parameters(), lr=1e-2)
    assert load_checkpoint(tmp_path / "ckpt.safetensors", new, new_opt)["step"] == 3
    assert "layers.2.res.weight" not in new.state_dict()
    train(old, old_opt, 2)
    train(new, new_opt, 2)  # the same moments, so the same steps
    theirs = dict(old.named_parameters())
    for name, value in new.named_parameters():
        assert torch.allclose(value, theirs[name], atol=1e-6), name
