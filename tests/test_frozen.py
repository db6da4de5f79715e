"""The frozen TorchScript fast path gives the eager model's answers, and steps aside when it cannot."""

import logging

import pytest
import torch

from lungscan.architectures import SimpleCNN
from lungscan.classes import CLASS_NAMES
from lungscan.gate import capture_gate_features
from lungscan.inference import Predictor
from lungscan.registry import ARCHITECTURES, create_model, get_spec
from lungscan.transforms import Preprocessing

from synthetic import ct_like


def _meta(arch: str, side: int = 224) -> dict:
    spec = get_spec(arch)
    return {"arch": arch, "class_names": list(CLASS_NAMES), "temperature": 1.5, "code_version": "test",
            "preprocessing": Preprocessing(side, spec.mean, spec.std, "full").to_dict()}


def _gate_at(predictor: Predictor, image) -> dict:
    """Gate statistics centred on this image's eager features, so the gate score is the features' distance."""
    with capture_gate_features(predictor.model, predictor.arch) as captured, torch.inference_mode():
        predictor.model(predictor.input_tensor(image))
    features = captured[0]
    return {"means": features, "precision": torch.eye(features.shape[1]), "threshold": 1e9}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_frozen_predictions_match_eager_for_every_architecture(arch):
    torch.manual_seed(0)
    model = create_model(arch)
    frozen = Predictor(model, _meta(arch), torch.device("cpu"))
    eager = Predictor(model, _meta(arch), torch.device("cpu"), engine="eager")
    assert (frozen.engine, eager.engine) == ("frozen", "eager")
    image = ct_like(2, seed=3)
    gate = _gate_at(eager, image)
    frozen.meta["gate"] = eager.meta["gate"] = gate
    a, b = frozen.predict(image), eager.predict(image)
    assert a.label == b.label
    assert max(abs(a.probabilities[c] - b.probabilities[c]) for c in CLASS_NAMES) < 1e-4
    assert max(abs(x - y) for x, y in zip(a.logits, b.logits)) < 1e-3
    # The gate sees the same features through the frozen graph: distance to the eager features is ~0.
    assert b.gate.score == pytest.approx(0.0, abs=1e-6)
    assert a.gate.score < 1e-2 * max(1.0, float(gate["means"].norm()))
    # The eager model is untouched (Grad-CAM uses it): no hooks left on its gate layer.
    assert not get_spec(arch).gate_layer(frozen.model)._forward_hooks


class _Alternating(SimpleCNN):
    """Python-side state changes its output from call to call: a trace cannot capture that."""

    def __init__(self) -> None:
        super().__init__(len(CLASS_NAMES))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = super().forward(x)
        return out if self.calls % 2 else -out


def test_a_model_the_trace_gets_wrong_runs_eagerly(caplog):
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="lungscan.frozen"):
        predictor = Predictor(_Alternating(), _meta("simple_cnn"), torch.device("cpu"))
    assert predictor.engine == "eager"
    assert "running eagerly" in caplog.text
    first, second = predictor.predict(ct_like(0)), predictor.predict(ct_like(0))
    assert first.logits == tuple(-v for v in second.logits)  # really the eager model, state and all


def test_bf16_and_an_unknown_engine():
    model = create_model("mobilenet_v2")
    assert Predictor(model, _meta("mobilenet_v2", 64), torch.device("cpu"), precision="bf16").engine == "eager"
    with pytest.raises(ValueError, match="engine"):
        Predictor(model, _meta("mobilenet_v2", 64), torch.device("cpu"), engine="tensorrt")


def test_a_model_with_large_logits_still_runs_frozen():
    """Fused kernels round differently; the check allows for that relative to the size of the outputs."""
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", pretrained="imagenet")
    with torch.no_grad():
        model.classifier.weight.mul_(1e4)  # logits in the thousands, like an over-confident model's
    frozen = Predictor(model, _meta("efficientnet_lite0"), torch.device("cpu"))
    eager = Predictor(model, _meta("efficientnet_lite0"), torch.device("cpu"), engine="eager")
    a, b = frozen.predict(ct_like(1)), eager.predict(ct_like(1))
    largest = max(abs(v) for v in b.logits)
    assert frozen.engine == "frozen" and largest > 100
    assert a.label == b.label
    assert max(abs(x - y) for x, y in zip(a.logits, b.logits)) < 1e-3 * largest
