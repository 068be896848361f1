"""torchvision networks with the heads the published checkpoints expect.

weights=None and weights_backbone=None everywhere: the node never downloads anything; the
only weights a model ever holds are the ones a site imported.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import convnext_base
from torchvision.models.segmentation import deeplabv3_resnet50
from torchvision.models.video import r2plus1d_18, r3d_18

from ai.models.registry import ModelSpec


def build(spec: ModelSpec) -> nn.Module:
    """An untrained network shaped like spec's checkpoint, in eval mode.

    deeplabv3_resnet50: aux classifier off (Dynamic builds it with aux_loss=False, LVH with the
    default None), classifier[-1] = Conv2d(256, channels, 1). Video models: fc = Linear(512, n)
    (Dynamic EF, LVH amyloid). convnext_base: classifier[-1] = Linear(1024, n) (EchoPrime).
    """
    channels = spec.output_channels
    model: nn.Module
    if spec.architecture == "deeplabv3_resnet50":
        model = deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=channels, aux_loss=False
        )
    elif spec.architecture == "r2plus1d_18":
        model = r2plus1d_18(weights=None, num_classes=channels)
    elif spec.architecture == "r3d_18":
        model = r3d_18(weights=None, num_classes=channels)
    elif spec.architecture == "convnext_base":
        model = convnext_base(weights=None, num_classes=channels)
    else:
        raise ValueError(f"unknown architecture {spec.architecture!r} for model {spec.name!r}")
    return model.eval()
