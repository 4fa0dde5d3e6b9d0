"""ResNet-18/50 written in the project: torchvision's parameter counts and names, the split trunk the CMR stages
use, and loading a user's ImageNet state dict (.pth with weights_only, or safetensors) with clear errors."""

import pytest
import torch

from handrecon.nn.resnet import load_imagenet_weights, read_state_dict, resnet18, resnet50




def count(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_equal_torchvision():
    r18, r50 = resnet18(), resnet50()
    assert count(r18) == 11_689_512
    assert count(r50) == 25_557_032
    # the parts CMR's later stages drop: the 7x7 stem (conv + BN) and the 1000-way fc
    assert count(resnet18(stem=False, num_classes=0)) == 11_689_512 - (64 * 3 * 49 + 128) - (512 * 1000 + 1000)
    assert count(resnet50(num_classes=0)) == 25_557_032 - (2048 * 1000 + 1000)
    assert r18.channels == (64, 64, 128, 256, 512) and r50.channels == (64, 256, 512, 1024, 2048)
    # torchvision's names, so its files load by name
    names = set(r18.state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight", "layer4.1.bn2.bias",
            "fc.weight"} <= names
    assert "layer3.0.downsample.1.running_mean" in set(r50.state_dict())


@pytest.mark.parametrize("make", [resnet18, resnet50])
def test_split_trunk_shapes(make):
    net = make(width=8, num_classes=10).eval()
    x = torch.rand(2, 3, 64, 64)
    stem = net.forward_stem(x)
    feats = net.forward_layers(stem)
    assert stem.shape == (2, 8, 32, 32)
    assert [tuple(f.shape[1:]) for f in feats] == [(c, s, s) for c, s in zip(net.channels[1:], (16, 8, 4, 2))]
    assert torch.equal(net(x), net.forward_head(feats[-1])) and net(x).shape == (2, 10)
    with pytest.raises(RuntimeError, match="stem"):
        make(width=8, stem=False).forward_stem(x)


def _torchvision_like(net):
    """A state dict as an older torchvision file holds it: no num_batches_tracked counters."""
    return {k: v.clone() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


def test_load_pth_and_safetensors_round_trip(tmp_path):
    from safetensors.torch import save_file

    source = resnet18(width=8).eval()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        source.bn1.running_mean.uniform_(-1, 1)
    state = _torchvision_like(source)
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, tmp_path / "r18.pth")
    save_file(state, str(tmp_path / "r18.safetensors"))
    x = torch.rand(1, 3, 64, 64)
    for name in ("r18.pth", "r18.safetensors"):
        target = resnet18(width=8).eval()
        assert load_imagenet_weights(target, tmp_path / name) == []
        assert torch.equal(target(x), source(x))
    # stages without a stem / without the head skip those tensors
    trunk = resnet18(width=8, stem=False, num_classes=0)
    skipped = load_imagenet_weights(trunk, tmp_path / "r18.pth")
    assert set(skipped) == {k for k in state if k.split(".")[0] in ("conv1", "bn1", "fc")}
    assert torch.equal(trunk.layer3[1].conv2.weight, source.layer3[1].conv2.weight)


def test_mismatched_weights_are_refused_with_names(tmp_path):
    with pytest.raises(ValueError, match="unexpected 165 tensors .*layer1.0.conv3.weight"):
        load_imagenet_weights(resnet18(width=8), _torchvision_like(resnet50(width=8)))
    with pytest.raises(ValueError, match="missing 165 tensors"):
        load_imagenet_weights(resnet50(width=8), _torchvision_like(resnet18(width=8)))
    with pytest.raises(ValueError, match=r"shape mismatches .*conv1.weight"):
        load_imagenet_weights(resnet18(width=16), _torchvision_like(resnet18(width=8)))
    with pytest.raises(ValueError, match="fc.weight"):
        load_imagenet_weights(resnet18(width=8, num_classes=10), _torchvision_like(resnet18(width=8)))
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "absent.pth")


class _NotATensor:
    pass


def test_pickled_objects_are_not_loaded(tmp_path):
    torch.save({"conv1.weight": torch.zeros(1), "extra": _NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only"):
        read_state_dict(tmp_path / "evil.pth")
