"""The hybrid study's models: each builds, runs forward and backward on a tiny input, has the
published parameter count, and starts from a local weights file when asked."""

import pytest
import torch

from curriculum_bench.models import create_model


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name, expected",
    [
        ("cvt13", 19_997_480),  # CvT paper Tab. 2: 20 M (microsoft/CvT cvt-13-224x224)
        ("convnext_tiny", 28_589_128),  # ConvNeXt paper: 28 M; torchvision convnext_tiny 28,589,128
        ("resnet18", 11_689_512),  # torchvision resnet18
    ],
)
def test_parameter_count_at_1000_classes_matches_the_published_model(name, expected):
    assert count(create_model(name, (3, 224, 224), 1000)) == expected


@pytest.mark.parametrize(
    "name, kwargs",
    [("cvt13", {}), ("convnext_tiny", {}), ("convnext_tiny", {"input_size": 48}), ("resnet18_cifar", {})],
)
def test_model_runs_forward_and_backward_on_a_tiny_batch(name, kwargs):
    torch.manual_seed(0)
    model = create_model(name, (3, 32, 32), 10, **kwargs)
    logits = model(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_convnext_input_size_resizes_inside_the_model():
    model = create_model("convnext_tiny", (3, 32, 32), 10, input_size=64)
    seen = []
    model.stem.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[-1]))
    model(torch.rand(1, 3, 32, 32))
    assert seen == [64]


@pytest.mark.parametrize("name", ["resnet50", "resnet18_finetune"])
def test_cifar_1k_resnets_see_cifar_at_224_px_inside_the_model(name):
    """cifar_1k upsamples CIFAR-10 to 224 px; `input_size` does it without a 224 px store."""
    model = create_model(name, (3, 32, 32), 10, head="mlp", input_size=224)
    seen = []
    model.conv1.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[-2:])))
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert seen == [(224, 224)]


def test_cvt13_on_grayscale_digits_sized_input():
    model = create_model("cvt13", (1, 8, 8), 10)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_weights_from_a_local_file_are_loaded(tmp_path):
    torch.manual_seed(1)
    source = create_model("mlt_convnet", (1, 8, 8), 10)
    torch.save({"model": source.state_dict()}, tmp_path / "ckpt.pt")  # this engine's checkpoint layout
    torch.manual_seed(2)
    loaded = create_model("mlt_convnet", (1, 8, 8), 10, weights=str(tmp_path / "ckpt.pt"))
    assert all(
        torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values(), strict=True)
    )


def test_weights_for_another_class_count_keep_a_fresh_classifier(tmp_path):
    torch.manual_seed(1)
    source = create_model("mlt_convnet", (1, 8, 8), 100)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    torch.manual_seed(2)
    fresh = create_model("mlt_convnet", (1, 8, 8), 10)
    torch.manual_seed(2)
    loaded = create_model("mlt_convnet", (1, 8, 8), 10, weights=str(tmp_path / "w.pt"))
    assert torch.equal(loaded.fc.weight, fresh.fc.weight)
    assert torch.equal(loaded.block1.conv1.weight, source.block1.conv1.weight)


def test_weights_with_other_names_are_rejected(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"names do not match the model"):
        create_model("mlt_convnet", (1, 8, 8), 10, weights=str(tmp_path / "w.pt"))
