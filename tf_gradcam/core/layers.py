"""Pick the layer to explain: by name, by object, or the last one with spatial axes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import keras

from tf_gradcam.core import graph

LayerLike = Union[str, keras.layers.Layer, None]

# [N, T, C], [N, H, W, C], [N, D, H, W, C]: one to three spatial axes between batch and channels.
SPATIAL_RANKS = (3, 4, 5)


@dataclass(frozen=True)
class LayerRef:
    """A layer found in a model: the object, its path and the nested models around it."""

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
        if graph.graph_of(model) is None and not isinstance(model, keras.Sequential) and model.built:
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


def _all_layers(model: keras.Model) -> list[LayerRef]:
    refs = []
    for path, layer, parents in graph.walk(model):
        shape = _output_shape(layer)
        refs.append(LayerRef(layer, path, parents, shape if shape is not None else ()))
    return refs


def _is_spatial(ref: LayerRef) -> bool:
    return len(ref.shape) in SPATIAL_RANKS


def explainable_layers(model: keras.Model) -> list[LayerRef]:
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


def resolve_layer(model: keras.Model, layer: LayerLike) -> LayerRef:
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
