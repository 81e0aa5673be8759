"""Choose the tensor to explain: any tensor of the model's graph, named, or the automatic choice.

The first room of the pipeline (choose what to explain -> engine -> weight the channels ->
render / log / evaluate / scale): a :class:`TensorRef` says which tensor the engine captures,
watches and hands to the methods. A target can be named as

* a layer or bare operation: its name, an ``"outer/inner/name"`` path, or the object;
* ``"name@i"`` / ``output_of(layer, call=i)``: one call of a shared layer (siamese branches);
* ``"name[j]"`` / ``output_of(layer, index=j)``: one output of a multi-output layer;
* ``"input_of(name)"`` / :func:`input_of`: the tensor a layer reads (what feeds the pooling);
* ``"outer/composite/sublayer"``: a layer that a composite layer runs inside its ``call``
  (keras-hub's ``vit_encoder/transformer_block_3``);
* ``None``: the automatic choice (:mod:`tf_gradcam.choose.auto`).

A ``[N, T, C]`` target inside an image model is a token sequence, explained on its patch grid
(:mod:`tf_gradcam.choose.tokens`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Sequence, Union

import keras

from tf_gradcam.choose import sublayers
from tf_gradcam.choose.catalog import Catalog, Entry
from tf_gradcam.choose.tokens import Layout, TokensLike, layout
from tf_gradcam.engine import graph

# [N, T, C], [N, H, W, C], [N, D, H, W, C]: one to three spatial axes between batch and channels.
SPATIAL_RANKS = (3, 4, 5)


@dataclass(frozen=True)
class Selector:
    """A tensor named relative to an operation: its output (``kind="output"``, the ``index``-th
    of several) or one of the tensors it reads (``kind="input"``), at its ``call``-th call."""

    layer: Any
    kind: str = "output"
    index: int | None = None
    call: int | None = None

    def __str__(self) -> str:
        name = self.layer if isinstance(self.layer, str) else self.layer.name
        call = f"@{self.call}" if self.call is not None else ""
        if self.kind == "input":
            index = f", {self.index}" if self.index else ""
            return f"input_of({name}{call}{index})"
        return f"{name}{call}" + (f"[{self.index}]" if self.index is not None else "")


def output_of(layer: Any, index: int | None = None, *, call: int | None = None) -> Selector:
    """The output of ``layer`` (a name, path or object): its ``index``-th output for a layer
    with several, at its ``call``-th call (construction order) for a shared one."""
    return Selector(layer, "output", index, call)


def input_of(layer: Any, index: int = 0, *, call: int | None = None) -> Selector:
    """The ``index``-th tensor ``layer`` reads (as captum's ``attribute_to_layer_input``):
    ``tfg.input_of("avg_pool")`` is what feeds the pooling, even when it has no name."""
    return Selector(layer, "input", index, call)


#: One tensor: a name or path, a layer or op object, a Selector, or ``None`` (automatic).
LayerLike = Union[str, keras.layers.Layer, Selector, None]
#: What an explainer's ``layer`` takes: one of those, or a list of them (Layer-CAM fuses several).
LayerSpec = Union[LayerLike, Sequence[Union[str, keras.layers.Layer, Selector]]]


@dataclass(frozen=True)
class TensorRef:
    """A tensor found in a model, and how the engine reaches it.

    Attributes:
        layer: the operation whose output (or input) it is.
        path: how it is named (``"backbone/add_17"``, ``"input_of(avg_pool)"``, ``"branch@1"``).
        parents: the nested models from the root (exclusive) down to the op's own model.
        shape: the tensor's static shape, batch first.
        kind: ``"output"`` or ``"input"``.
        index: which output of several, or which tensor among the inputs.
        order_of_call: which invocation of the op in one run of the model is captured
            (``None``: its only one).
        within: composite layers from the graph's node down to the sublayer's holder (empty
            for a tensor of the functional graph).
        layout: a token sequence's patch grid, or ``None``.
    """

    layer: Any
    path: str
    parents: tuple = ()
    shape: tuple = ()
    kind: str = "output"
    index: int | None = None
    order_of_call: int | None = None
    within: tuple = ()
    layout: Layout | None = None

    @property
    def spatial_rank(self) -> int:
        return len(self.layout.grid) if self.layout is not None else len(self.shape) - 2


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


def is_spatial(shape: tuple) -> bool:
    return len(shape) in SPATIAL_RANKS


def ref_of(cat: Catalog, entry: Entry, kind: str = "output", index: int | None = None,
           shape: tuple | None = None, path: str | None = None) -> TensorRef:
    """The :class:`TensorRef` of a catalog entry (or of one of the tensors its call reads)."""
    call = entry.call
    order = cat.order_of(call) if cat.runs_of(call.op) > 1 else None
    return TensorRef(
        layer=call.op, path=path or entry.path, parents=call.parents,
        shape=entry.shape if shape is None else shape, kind=kind,
        index=entry.index if kind == "output" else index, order_of_call=order)


def list_layers(model: keras.Model, *, details: bool = False) -> list:
    """The tensors that can be explained (with spatial axes), last first, nested models' and
    composite layers' contents included: their names (each one a valid ``layer=``), or with
    ``details=True`` ``(name, shape)`` pairs."""
    check_built(model)
    cat = Catalog(model)
    inner = sublayers.listing(model, cat)
    found = []
    for entry in reversed(cat.entries):
        if is_spatial(entry.shape):
            found.append((entry.path, entry.shape))
        found += [(p, s) for p, s in reversed(inner.get(id(entry), [])) if is_spatial(s)]
    return found if details else [path for path, _ in found]


def candidates(model: keras.Model, limit: int = 12, shapes: bool = False) -> str:
    found = list_layers(model, details=True)
    shown = ", ".join(f"{p!r} {tuple(s)}" if shapes else repr(p) for p, s in found[:limit])
    more = f" and {len(found) - limit} more (tfg.list_layers(model) lists them all)" if len(
        found) > limit else ""
    return shown + more if found else "(none)"


_INPUT_OF = re.compile(r"^input_of\((?P<name>.+?)(?:,\s*(?P<index>\d+))?\)$")
_SUFFIX = re.compile(r"^(?P<name>.+?)(?:@(?P<call>\d+))?(?:\[(?P<index>\d+)\])?$")


def _parse(spec: str) -> Selector:
    m = _INPUT_OF.match(spec)
    if m:
        inner = _parse(m.group("name"))
        return Selector(inner.layer, "input", int(m.group("index") or 0), inner.call)
    m = _SUFFIX.match(spec)
    assert m is not None
    call, index = m.group("call"), m.group("index")
    return Selector(m.group("name"), "output", None if index is None else int(index),
                    None if call is None else int(call))


def _matching(cat: Catalog, layer: Any) -> list[Entry]:
    if isinstance(layer, str):
        exact = [e for e in cat.entries if e.path == layer]
        if exact:
            return exact
        bare = re.sub(r"(@\d+)?(\[\d+\])?$", "", layer)
        by_path = [e for e in cat.entries
                   if re.sub(r"(@\d+)?(\[\d+\])?$", "", e.path) == bare]
        return by_path or [e for e in cat.entries if e.op.name == bare]
    return [e for e in cat.entries if e.op is layer]


def resolve(model: keras.Model, spec: LayerLike, *, tokens: TokensLike = None,
            catalog: Catalog | None = None) -> TensorRef:
    """Find the tensor ``spec`` names in ``model`` (see the module docstring).

    Raises:
        ValueError: unknown, ambiguous (a shared layer without its call, a multi-output layer
            without its index) or without spatial axes; the message lists the candidates.
    """
    check_built(model)
    cat = catalog or Catalog(model)
    if spec is None:
        from tf_gradcam.choose import auto

        return auto.choose(model, cat, tokens)
    direct: list[Entry] = []
    if isinstance(spec, str):
        direct = [e for e in cat.entries if e.path == spec]
        sel = Selector(spec, index=direct[0].index) if direct else _parse(spec)
    elif isinstance(spec, Selector):
        sel = spec
    elif isinstance(spec, keras.Operation):
        sel = Selector(spec)
    else:
        raise TypeError(
            f"layer must be a layer name or path, a keras layer or op, tfg.input_of(...) / "
            f"tfg.output_of(...), or None; got {type(spec).__name__}."
        )
    matches = _matching(cat, sel.layer)
    label = sel.layer if isinstance(sel.layer, str) else sel.layer.name
    if not matches and isinstance(sel.layer, (str, keras.layers.Layer)):
        found = sublayers.find(cat, sel.layer)
        if found is not None:
            return _with_layout(model, cat, sublayers.ref(model, cat, found, sel), tokens)
    if not matches:
        what = f"layer {label!r}" if isinstance(sel.layer, str) else f"layer object {label!r}"
        raise ValueError(
            f"Model {model.name!r} has no {what}. Layers that can be explained, last first: "
            f"{candidates(model)}."
        )
    matches = direct or _pick(matches, sel, label)
    entry = matches[0]
    if sel.kind == "input":
        consumed = entry.call.inputs
        index = sel.index or 0
        if index >= len(consumed):
            raise ValueError(f"{label!r} reads {len(consumed)} tensor(s); input index {index} "
                             "does not exist.")
        path = str(Selector(entry.path.split("[")[0], "input", index))
        ref = ref_of(cat, entry, "input", index, consumed[index].shape, path)
    else:
        ref = ref_of(cat, entry)
    if not is_spatial(ref.shape):
        raise ValueError(
            f"Layer {ref.path!r} has output shape {ref.shape}, with no spatial axes to draw a map "
            f"over. Choose a layer before global pooling / flattening: {candidates(model)}."
        )
    return _with_layout(model, cat, ref, tokens)


def _pick(matches: list[Entry], sel: Selector, label: str) -> list[Entry]:
    """The entries of ``sel``'s call and output among ``matches``; a ValueError if ambiguous."""
    calls = sorted({e.call.index for e in matches if e.shared})
    if sel.call is not None:
        matches = [e for e in matches if e.call.index == sel.call]
        if not matches:
            raise ValueError(f"{label!r} has no call {sel.call}; its calls are {calls}.")
    elif len({id(e.call) for e in matches}) > 1 and len(
            {e.call.parent_calls for e in matches}) == 1:
        raise ValueError(
            f"Layer {label!r} is called {len(calls)} times in the model (a shared layer or "
            f"backbone, as in a siamese network); name one call, e.g. '{label}@0' or "
            f"tfg.output_of({label!r}, call=0), or explain the shared model on its own: "
            "tfg.GradCAM(backbone)."
        )
    elif len({e.call.parent_calls for e in matches}) > 1:
        paths = ", ".join(repr(e.path) for e in matches[:6])
        raise ValueError(f"{label!r} is ambiguous in the model: {paths}. Pass the path.")
    if sel.kind == "output":
        outputs = [e for e in matches if e.index is not None]
        if outputs and sel.index is None:
            raise ValueError(
                f"Layer {label!r} has {len(outputs)} outputs; name one, e.g. '{label}[0]' or "
                f"tfg.output_of({label!r}, index=0).")
        if sel.index is not None:
            matches = [e for e in matches if e.index == sel.index] or matches[:0]
            if not matches:
                raise ValueError(f"Layer {label!r} has no output {sel.index}.")
    return matches


def _with_layout(model: keras.Model, cat: Catalog, ref: TensorRef, tokens: TokensLike
                 ) -> TensorRef:
    """A ``[N, T, C]`` target computed from an image input (and from no sequence input) is a
    token sequence: attach its patch grid."""
    if len(ref.shape) != 3:
        if tokens is not None:
            raise ValueError(f"tokens= applies to [N, T, C] token sequences; {ref.path!r} has "
                             f"shape {ref.shape}.")
        return ref
    image = token_image(model, cat, ref)
    if image is None:
        return ref
    return replace(ref, layout=layout(ref.shape[1], image, tokens, f"Layer {ref.path!r}"))


def token_image(model: keras.Model, cat: Catalog, ref: TensorRef) -> tuple | None:
    """``(H, W)`` of the image input a ``[N, T, C]`` target is computed from, or ``None`` when
    it also reads a sequence input (then it is a 1D sequence, explained as one)."""
    feeding = [cat.roots[i] for i in input_indices(cat, ref)]
    if any(len(v.shape) in (2, 3) for v in feeding):
        return None  # token ids [N, T] or a signal [N, T, C]: a 1D sequence
    images = [v for v in feeding if len(v.shape) == 4]
    return tuple(images[0].shape[1:3]) if images else None


def input_indices(cat: Catalog, ref: TensorRef) -> list[int]:
    """Indices into ``model.inputs`` of the inputs ``ref`` depends on."""
    calls = [c for c in cat.calls if c.op is (ref.within[0] if ref.within else ref.layer)]
    found = []
    for i, root in enumerate(cat.roots):
        deps = cat.depends_on([root])
        if any(id(v) in deps or v is root for c in calls for v in c.inputs):
            found.append(i)
    return found
