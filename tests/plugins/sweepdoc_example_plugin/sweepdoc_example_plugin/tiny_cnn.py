"""A tiny CNN: one convolution, global average pooling, a hidden layer, a linear classifier."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class Options(BaseModel):
    """The model's own options (a study's ``model.options``)."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(default=16, ge=1, le=512, description="Units of the hidden layer.")
    channels: int = Field(default=8, ge=1, le=256, description="Channels of the convolution.")


def build(config: Any, num_classes: int, in_channels: int) -> nn.Module:
    """The model for *num_classes* classes of *in_channels*-channel images.

    sweepdoc has already checked ``config.options`` against ``Options`` (defaults filled
    in); parsing it again gives typed access.
    """
    options = Options.model_validate(config.options or {})
    return nn.Sequential(
        nn.Conv2d(in_channels, options.channels, 3, padding=1),  # (N, channels, H, W)
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),  # (N, channels, 2, 2)
        nn.Flatten(),
        nn.Linear(options.channels * 4, options.hidden),
        nn.ReLU(),
        nn.Linear(options.hidden, num_classes),  # (N, num_classes) logits
    )
