"""Choose the tensor to explain: a layer by name, path or object, or the automatic choice.

The first room of the pipeline (choose what to explain -> engine -> weight the channels ->
render / log / evaluate / scale): a :class:`TensorRef` says which tensor of the model's graph
the engine captures, watches and hands to the methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import keras

from tf_gradcam.engine import graph

#: One tensor: a layer name, an ``"outer/inner"`` path, a layer object, or ``None`` (automatic).
LayerLike = Union[str, keras.layers.Layer, None]
#: What an explainer's ``layer`` takes: one of those, or a list of them (Layer-CAM fuses several).
LayerSpec = Union[LayerLike, Sequence[Union[str, keras.layers.Layer]]]

# [N, T, C], [N, H, W, C], [N, D, H, W, C]: one to three spatial axes between batch and channels.
SPATIAL_RANKS = (3, 4, 5)


@dataclass(frozen=True)
class TensorRef:
    """A tensor found in a model: the layer producing it, its path and the nested models around
    it."""

    layer: keras.layers.Layer
    path: str  # "backbone/conv5_block3_out" for a layer inside the nested model "backbone"
    parents: tuple  # nested models from the root (exclusive) down to the layer's own model
    shape: tuple  # the layer's output shape, batch first (None for unknown sizes)

    @property
    def spatial_rank(self) -> int:
        return len(self.shape) - 2


def check_built(model: keras.Model) -> None:
    """Raise a ValueError that says how to build ``model`` when it cannot be explained yet."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Expected a keras.Model, got {type(model).__name__}. Wrap your layers in "
            "keras.Sequential([...]) or a functional keras.Model(inputs, outputs)."
        )
    if not model.built or graph.graph_of(model) is None:
        subclassed = not isinstance(model, keras.Sequential) and model.built
        if graph.graph_of(model) is None and subclassed:
            raise ValueError(
                f"Model {model.name!r} is a subclassed keras.Model: its inner layers cannot be "
                "reached from its inputs. Rebuild it with the functional API, e.g. "
                "inputs = keras.Input(shape); outputs = ...; keras.Model(inputs, outputs)."
            )
        raise ValueError(
            f"Model {model.name!r} has not been built, so its layers have no output shapes yet. "
            "Give it an input shape first: start a Sequential with keras.Input(shape=...), call "
            "model.build((None, *input_shape)), or call it once on a batch."
        )


def _output_shape(layer: keras.layers.Layer) -> tuple | None:
    try:
        out = layer.output
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(out, (list, tuple, dict)):  # a layer with several outputs is not one map
        return None
    return tuple(out.shape)


def _all_layers(model: keras.Model) -> list[TensorRef]:
    refs = []
    for path, layer, parents in graph.walk(model):
        shape = _output_shape(layer)
        refs.append(TensorRef(layer, path, parents, shape if shape is not None else ()))
    return refs


def _is_spatial(ref: TensorRef) -> bool:
    return len(ref.shape) in SPATIAL_RANKS


def explainable_layers(model: keras.Model) -> list[TensorRef]:
    """Layers whose output has spatial axes, the last one first (nested models included)."""
    check_built(model)
    return [ref for ref in reversed(_all_layers(model)) if _is_spatial(ref)]


def list_layers(model: keras.Model) -> list[str]:
    """Names (paths, ``"outer/inner"`` when nested) of the explainable layers, last first."""
    return [ref.path for ref in explainable_layers(model)]


def _candidates(model: keras.Model, limit: int = 12) -> str:
    names = list_layers(model)
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f" and {len(names) - limit} more (tfg.list_layers(model) lists them all)" if len(
        names) > limit else ""
    return shown + more if names else "(none)"


def resolve_layer(model: keras.Model, layer: LayerLike) -> TensorRef:
    """Find ``layer`` (a name, a path, a layer object or ``None``) in ``model``.

    Raises:
        ValueError: the layer is unknown or has no spatial output; the message lists the layers
            that can be explained, last first.
    """
    check_built(model)
    refs = _all_layers(model)
    if layer is None:
        spatial = [r for r in reversed(refs) if _is_spatial(r)]
        if not spatial:
            raise ValueError(
                f"Model {model.name!r} has no layer whose output has spatial axes "
                "([N, T, C], [N, H, W, C] or [N, D, H, W, C]); Grad-CAM needs a convolutional "
                "(or other spatial) layer to explain."
            )
        return spatial[0]

    if isinstance(layer, keras.layers.Layer):
        matches = [r for r in refs if r.layer is layer]
        what = f"layer object {layer.name!r}"
    elif isinstance(layer, str):
        matches = [r for r in refs if r.path == layer] or [r for r in refs if r.layer.name == layer]
        what = f"layer {layer!r}"
    else:
        raise TypeError(
            f"layer must be a layer name, a keras layer or None, got {type(layer).__name__}."
        )
    if not matches:
        raise ValueError(
            f"Model {model.name!r} has no {what}. Layers that can be explained, last first: "
            f"{_candidates(model)}."
        )
    if len(matches) > 1:
        paths = ", ".join(repr(m.path) for m in matches)
        raise ValueError(f"{what} is ambiguous in model {model.name!r}: {paths}. Pass the path.")
    ref = matches[0]
    if not _is_spatial(ref):
        raise ValueError(
            f"Layer {ref.path!r} has output shape {ref.shape}, with no spatial axes to draw a map "
            f"over. Choose a layer before global pooling / flattening: {_candidates(model)}."
        )
    return ref


#: The name of :class:`TensorRef` before it could name more than layers' outputs.
LayerRef = TensorRef


def resolve_many(model: keras.Model, layer: LayerSpec, *, fuses: bool, method: str
                 ) -> tuple[TensorRef, ...]:
    """``layer`` (or, for a method that fuses layers, a list of them) as tensor references."""
    if not isinstance(layer, (list, tuple)):
        return (resolve_layer(model, layer),)
    refs = tuple(resolve_layer(model, lyr) for lyr in layer)
    if not refs:
        raise ValueError(f"layer is an empty {type(layer).__name__}: name at least one layer.")
    if len(refs) > 1 and not fuses:
        raise ValueError(
            f"{method} explains one layer; got {len(refs)}: {[r.path for r in refs]}. Pass one "
            "(tfg.LayerCAM fuses several layers)."
        )
    if len({id(r.layer) for r in refs}) < len(refs):
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
    depends on, with its spatial axes plus channels (``[N, H, W, C]`` under a 2D target), or
    token ids ``[N, T]`` under a 1D one. Without a target: the first input with spatial axes."""
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
    feeding = graph.input_ancestors(
        model, lambda calls: [v for c in calls if c.op is ref.layer for v in c.inputs]
    ) or range(len(specs))
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
