"""The result of every explainer: maps, targets and scores as NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np


@dataclass
class Explanation:
    """What an explainer returns for ``N`` inputs.

    Attributes:
        heatmaps: ``[N, *input spatial shape] float32 in [0, 1]``: the map upsampled to the input
            and divided by its maximum; an all-zero map stays all zero.
        raw: ``[N, *layer spatial shape] float32 >= 0``: the method's map at the layer's
            resolution after its ReLU, unscaled.
        targets: ``[N] int64``: the class explained per sample (-1 where a callable chose the
            score).
        scores: ``[N] float32``: the score that was explained (a logit under ``score="logits"``).
        weights: ``[N, K] float32`` per-channel weights (alphas) for methods that have them,
            else None.
        extras: further per-sample arrays a method returns (e.g. guided backprop's input gradients).
        method: the method's name; layer: the explained layer's path.
    """

    heatmaps: np.ndarray
    raw: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    weights: np.ndarray | None = None
    extras: dict = field(default_factory=dict)
    method: str = ""
    layer: str = ""

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], *, method: str = "",
                    layer: str = "") -> Explanation:
        """From named arrays: ``heatmaps``, ``raw``, ``targets``, ``scores``, optional
        ``weights``; every other name becomes an extra. Arrays of the right dtype (memory maps
        too) are kept, not copied."""
        fields = dict(arrays)
        return cls(
            heatmaps=fields.pop("heatmaps").astype(np.float32, copy=False),
            raw=fields.pop("raw").astype(np.float32, copy=False),
            targets=fields.pop("targets").astype(np.int64, copy=False),
            scores=fields.pop("scores").astype(np.float32, copy=False),
            weights=fields.pop("weights", None),
            extras=fields,
            method=method,
            layer=layer,
        )

    def __len__(self) -> int:
        return len(self.heatmaps)

    def overlay(self, images, colormap="jet", alpha: float = 0.4) -> np.ndarray:
        """``[N, H, W, 3] uint8``: each heatmap coloured by ``colormap`` and blended over its image.

        ``images`` is ``[N, H, W, 3]`` or ``[N, H, W]``, uint8 or float (see :func:`tfg.overlay`).
        """
        from tf_gradcam.render import overlay_batch

        return overlay_batch(images, self.heatmaps, colormap=colormap, alpha=alpha)

    def __repr__(self) -> str:
        return (f"Explanation(method={self.method!r}, layer={self.layer!r}, n={len(self)}, "
                f"heatmaps={self.heatmaps.shape}, raw={self.raw.shape})")
