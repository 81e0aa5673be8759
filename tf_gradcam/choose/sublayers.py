"""Layers inside a composite layer: a layer whose ``call`` runs other layers (keras-hub's
``ViTEncoder`` and its ``transformer_block_i``, any custom block holding layers).

They are not nodes of any functional graph, so the catalog does not list them; they are named
by a path through the composite (``"vit_backbone/vit_encoder/transformer_block_3"``) or by
object, and the engine reaches them through twins (:mod:`tf_gradcam.engine.capture`). Their
shapes are read by tracing the model once with them captured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from tf_gradcam.choose.catalog import Catalog, Entry
from tf_gradcam.engine import _keras, capture, graph


@dataclass(frozen=True)
class Found:
    """A sublayer: the catalog entry of the graph node that holds it, and the chain of layers
    from that node (inclusive) down to the sublayer (inclusive)."""

    entry: Entry
    chain: tuple


def children(layer: Any) -> list:
    """The layers ``layer`` holds directly (none for a functional model, whose graph is listed,
    nor for Keras' own layers, whose inner parts, such as an attention's projections, are not
    what a user explains)."""
    if graph.is_graph_model(layer) or not isinstance(layer, keras.layers.Layer):
        return []
    if type(layer).__module__.startswith("keras."):
        return []
    return _keras.child_layers(layer)


def descendants(layer: Any, prefix: str = "") -> list[tuple[str, tuple]]:
    """``(path, chain)`` for every layer below ``layer``, depth first, in assignment order."""
    found = []
    for child in children(layer):
        path = f"{prefix}{child.name}"
        found.append((path, (child,)))
        found += [(p, (child, *chain)) for p, chain in descendants(child, path + "/")]
    return found


def holder_path(entry: Entry) -> str:
    """A composite's path without its output index: its sublayers belong to the whole call."""
    return re.sub(r"\[\d+\]$", "", entry.path)


def find(cat: Catalog, spec: Any) -> Found | None:
    """The sublayer ``spec`` names, if any: a layer object, or a path through a composite, in
    full (``"backbone/vit_encoder/transformer_block_3"``) or as its last components
    (``"vit_encoder/transformer_block_3"``, ``"transformer_block_3"``)."""
    found: dict[int, Found] = {}
    for entry in cat.entries:
        if not children(entry.op) or entry.index not in (None, 0):
            continue
        for path, chain in descendants(entry.op):
            full = f"{holder_path(entry)}/{path}"
            if chain[-1] is spec or (isinstance(spec, str) and (
                    full == spec or full.endswith("/" + spec))):
                found.setdefault(id(chain[-1]), Found(entry, (entry.op, *chain)))
    if len(found) > 1:
        paths = ", ".join(repr(f"{holder_path(f.entry)}/" + "/".join(x.name for x in f.chain[1:]))
                          for f in found.values())
        raise ValueError(f"{spec!r} is ambiguous: {paths}. Pass the full path.")
    return next(iter(found.values()), None)


def listing(model: keras.Model, cat: Catalog) -> dict[int, list[tuple[str, tuple]]]:
    """``{id(composite's entry): [(path, shape), ...]}`` of every sublayer that runs, for
    :func:`tf_gradcam.choose.tensors.list_layers` (one trace of the model for their shapes)."""
    from tf_gradcam.choose.tensors import TensorRef

    targets, owners = [], []
    for entry in cat.entries:
        if not children(entry.op) or entry.index not in (None, 0):
            continue
        for path, chain in descendants(entry.op):
            targets.append(TensorRef(layer=chain[-1], path=f"{holder_path(entry)}/{path}",
                                     within=(entry.op, *chain[:-1])))
            owners.append(id(entry))
    if not targets:
        return {}
    specs = [tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype)
             for t in graph.graph_of(model).inputs]
    found: dict[int, list] = {}
    for owner, target, shape in zip(owners, targets, capture.probe_shapes(model, tuple(targets),
                                                                          specs)):
        if shape:
            found.setdefault(owner, []).append((target.path, shape))
    return found


def ref(model: keras.Model, cat: Catalog, found: Found, sel: Any) -> Any:
    """The :class:`~tf_gradcam.choose.tensors.TensorRef` of a sublayer's output or input."""
    from tf_gradcam.choose.tensors import TensorRef, is_spatial, ref_of

    holder = ref_of(cat, found.entry)
    names = "/".join(layer.name for layer in found.chain[1:])
    path = f"{holder_path(found.entry)}/{names}"
    kind = sel.kind
    target = TensorRef(
        layer=found.chain[-1], path=f"input_of({path})" if kind == "input" else path,
        parents=holder.parents, kind=kind,
        index=(sel.index or 0) if kind == "input" else sel.index,
        order_of_call=sel.call, within=found.chain[:-1])
    specs = [tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype)
             for t in graph.graph_of(model).inputs]
    shape = capture.probe_shapes(model, (target,), specs)[0]
    if not shape:
        raise ValueError(f"Sublayer {path!r} does not run when the model runs (no call seen).")
    out = TensorRef(**{**target.__dict__, "shape": shape})
    if not is_spatial(out.shape):
        raise ValueError(f"Sublayer {path!r} has shape {out.shape}, with no spatial axes to draw "
                         "a map over.")
    return out
