"""What an explainer explains: its target tensors (several when fusing layers), and the model
input its maps are drawn over; plus the checks on the model that must pass first."""

from __future__ import annotations

from typing import Sequence

import keras

from tf_gradcam.choose.catalog import Catalog
from tf_gradcam.choose.tensors import SPATIAL_RANKS, LayerSpec, TensorRef, input_indices, resolve
from tf_gradcam.choose.tokens import TokensLike
from tf_gradcam.engine import graph


def targets(model: keras.Model, layer: LayerSpec, *, tokens: TokensLike, fuses: bool,
            method: str) -> tuple[TensorRef, ...]:
    """``layer`` (or, for a method that fuses layers, a list of them) as tensor references."""
    cat = Catalog(model)
    if not isinstance(layer, (list, tuple)):
        return (resolve(model, layer, tokens=tokens, catalog=cat),)
    refs = tuple(resolve(model, lyr, tokens=tokens, catalog=cat) for lyr in layer)
    if not refs:
        raise ValueError(f"layer is an empty {type(layer).__name__}: name at least one layer.")
    if len(refs) > 1 and not fuses:
        raise ValueError(
            f"{method} explains one layer; got {len(refs)}: {[r.path for r in refs]}. Pass one "
            "(tfg.LayerCAM fuses several layers)."
        )
    if len({r.path for r in refs}) < len(refs):
        raise ValueError(f"layer lists a layer twice: {[r.path for r in refs]}.")
    if len({r.spatial_rank for r in refs}) > 1:
        raise ValueError(
            f"Fused layers need the same number of spatial axes; got "
            f"{ {r.path: r.shape for r in refs} }."
        )
    for outer in refs:
        for inner in refs:
            if inner is not outer and graph.is_graph_model(outer.layer) and graph.contains(
                    outer.layer, inner.layer):
                raise ValueError(
                    f"Layer {inner.path!r} lies inside the fused model {outer.path!r}: list "
                    f"that model's last layer instead of {outer.path!r}."
                )
    return refs


def spatial_input(model: keras.Model, ref: TensorRef | None, specs: Sequence, method: str) -> int:
    """Index of the model input the maps are drawn over (and Score-CAM masks): one the target
    depends on, with its spatial axes plus channels (``[N, H, W, C]`` under a 2D target, also a
    token grid), or token ids ``[N, T]`` under a 1D one. Without a target: the first input with
    spatial axes."""
    if ref is None:
        for i, spec in enumerate(specs):
            if spec.shape.rank in SPATIAL_RANKS:
                return i
        raise ValueError(
            f"{method} draws its map over an input with spatial axes ([N, T, C], [N, H, W, C] "
            f"or [N, D, H, W, C]); model {model.name!r} has inputs of shapes "
            f"{[tuple(s.shape) for s in specs]}."
        )
    s = ref.spatial_rank
    feeding = input_indices(Catalog(model), ref) or range(len(specs))
    for i in feeding:
        if specs[i].shape.rank == s + 2:
            return i
    for i in feeding:
        if specs[i].shape.rank == s + 1 and (specs[i].dtype.is_integer or s == 1):
            return i
    raise ValueError(
        f"Layer {ref.path!r} has {s} spatial axes, but no model input it depends on has them "
        f"(inputs: {[tuple(sp.shape) for sp in specs]}); there is no image to draw its map "
        "over. Choose a layer computed from the spatial input."
    )


def refuse_channels_first(model: keras.Model) -> None:
    # Maps, upsampling and masks all read the spatial axes as [N, *S, C]; a channels_first
    # layer would be explained along the wrong axes without any error.
    for path, layer, _ in graph.walk(model):
        if getattr(layer, "data_format", None) == "channels_first":
            raise ValueError(
                f"Layer {path!r} uses data_format='channels_first'; tf_gradcam reads activations "
                "as channels last ([N, *spatial, C]). Rebuild the model channels_last (the "
                "TensorFlow default; weights transfer unchanged for Conv layers)."
            )
