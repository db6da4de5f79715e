"""Class activation maps with the `grad-cam` package.

CAM objects are created per call inside a `with` block so their hooks are always
removed, and a lock serialises hook-installing code because the cached model is
shared by every Streamlit session.
"""

from __future__ import annotations


import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from .gate import _hook_lock
from .registry import get_spec

CAM_METHODS: dict[str, str] = {
    "Grad-CAM": "gradcam",
    "Grad-CAM++": "gradcam++",
    "HiResCAM": "hirescam",
    "XGrad-CAM": "xgradcam",
    "LayerCAM": "layercam",
    "Eigen-CAM": "eigencam",
}
_CAM_CLASSES = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "hirescam": HiResCAM,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
}


class _ChannelsLast(torch.nn.Module):
    """Feeds grad-cam's input to the model in channels_last, the layout the cached model uses."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last))


def compute_cam(predictor, image: Image.Image, target_class: str, method: str = "gradcam") -> np.ndarray:
    """A (H, W) map in [0, 1] over `predictor.model_view(image)` for `target_class`."""
    if method not in _CAM_CLASSES:
        raise ValueError(f"Unknown CAM method {method!r}; choose one of {', '.join(_CAM_CLASSES)}.")
    if target_class not in predictor.class_names:
        raise ValueError(f"{target_class!r} is not one of this model's classes {predictor.class_names}.")
    model = predictor.model
    layer = get_spec(predictor.arch).target_layer(model)
    x = predictor.input_tensor(image)
    target = [ClassifierOutputTarget(predictor.class_names.index(target_class))]
    with _hook_lock, torch.enable_grad():
        with _CAM_CLASSES[method](model=_ChannelsLast(model), target_layers=[layer]) as cam:
            grayscale = cam(input_tensor=x, targets=target)[0]
    return np.nan_to_num(np.clip(grayscale, 0.0, 1.0)).astype(np.float32)


def overlay_cam(base: Image.Image, cam: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Colour the CAM (jet) over the greyscale base image; returns (H, W, 3) uint8 RGB."""
    rgb = np.asarray(base.convert("RGB").resize((cam.shape[1], cam.shape[0])), dtype=np.float32) / 255.0
    return show_cam_on_image(rgb, cam, use_rgb=True, image_weight=float(np.clip(1.0 - alpha, 0.0, 1.0)))
