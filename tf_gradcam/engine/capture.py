"""Capture target tensors during one re-execution, wherever they live, without touching the model.

A target (:class:`~tf_gradcam.choose.tensors.TensorRef`) is the output or one input of an
operation of a functional graph (a layer, or a bare op such as ``add_17``), at one of its calls
when it is shared, one output when it has several; or of a *sublayer* that a composite layer
runs inside its own ``call`` (keras-hub's ``ViTEncoder`` and its ``transformer_block_3``).

:func:`interceptors` turns targets into overrides for :func:`tf_gradcam.engine.graph.run`. A
sublayer is reached through twins (:func:`tf_gradcam.engine._keras.share_state`): the composite
runs as a twin whose attribute holding the next layer on the path is the next layer's twin, and
the sublayer's twin has a ``call`` of its own that records the tensor. Twins share the
originals' variables and live for one trace; the user's layers are never modified, not even
for a moment, so a concurrent ``model.predict`` sees nothing.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import tensorflow as tf

from tf_gradcam.engine import _keras, graph


def _process(store: list, watch: Callable | None, transform: Callable | None
             ) -> Callable[[Any], Any]:
    def process(value):
        if transform is not None:
            value = transform(value)
        if watch is not None:
            watch(value)
        store.append(value)
        return value

    return process


def _is_tensor(x: Any) -> bool:
    return tf.is_tensor(x) or hasattr(x, "shape") and hasattr(x, "dtype")


def _on_input(index: int, process: Callable, fn: Callable) -> Callable:
    """``fn`` with the ``index``-th tensor among its arguments replaced by ``process(it)``."""

    def call(*args, **kwargs):
        leaves = _keras.flatten((args, kwargs))
        positions = [i for i, leaf in enumerate(leaves) if _is_tensor(leaf)]
        leaves = list(leaves)
        leaves[positions[index]] = process(leaves[positions[index]])
        args, kwargs = _keras.pack_like((args, kwargs), leaves)
        return fn(*args, **kwargs)

    return call


def _on_output(index: int | None, process: Callable, fn: Callable) -> Callable:
    """``fn`` with its output (or its ``index``-th output) replaced by ``process(it)``."""

    def call(*args, **kwargs):
        out = fn(*args, **kwargs)
        if index is None:
            return process(out)
        leaves = list(_keras.flatten(out))
        leaves[index] = process(leaves[index])
        return _keras.pack_like(out, leaves)

    return call


def replace_child(parent_twin: Any, child: Any, new_child: Any) -> None:
    """In a twin's own attribute dict, point every reference to ``child`` (an attribute, or an
    item of a list, tuple or dict attribute) at ``new_child``."""
    found = False
    for key, value in list(vars(parent_twin).items()):
        if value is child:
            new: Any = new_child
        elif isinstance(value, (list, tuple)) and any(v is child for v in value):
            items = [new_child if v is child else v for v in value]
            new = tuple(items) if isinstance(value, tuple) else items
        elif isinstance(value, dict) and any(v is child for v in value.values()):
            new = {k: (new_child if v is child else v) for k, v in value.items()}
        else:
            continue
        _keras.set_attribute(parent_twin, key, new)
        found = True
    if not found:
        raise ValueError(
            f"Layer {child.name!r} is not held by {parent_twin.name!r} as an attribute or in a "
            "list or dict attribute, so it cannot be reached without changing the model; "
            "explain a tensor of the functional graph instead (tfg.list_layers lists them).")


class _Twins:
    """Twins of the layers on the paths from one composite down to its captured sublayers:
    every layer on a path is twinned once, its parent's twin points at it, and each captured
    sublayer's twin gets a ``call`` of its own (all captures of it composed)."""

    def __init__(self) -> None:
        self.twins: dict[int, Any] = {}
        self.linked: set[tuple[int, int]] = set()
        self.wraps: dict[int, list[Callable]] = {}
        self.layers: dict[int, Any] = {}

    def twin(self, layer: Any) -> Any:
        if id(layer) not in self.twins:
            self.twins[id(layer)] = _keras.share_state(layer)
            self.layers[id(layer)] = layer
        return self.twins[id(layer)]

    def add(self, path: tuple, wrap: Callable[[Callable], Callable]) -> None:
        for parent, child in zip(path, path[1:]):
            if (id(parent), id(child)) not in self.linked:
                replace_child(self.twin(parent), child, self.twin(child))
                self.linked.add((id(parent), id(child)))
        self.twin(path[-1])
        self.wraps.setdefault(id(path[-1]), []).append(wrap)

    def root(self, layer: Any) -> Any:
        for key, wraps in self.wraps.items():
            twin = self.twins[key]
            call = type(self.layers[key]).call.__get__(twin)
            for wrap in wraps:
                call = wrap(call)
            _keras.set_attribute(twin, "call", call)
        return self.twin(layer)


def interceptors(refs: tuple, stores: list[list], *, watch: Callable | None = None,
                 transform: Callable | None = None) -> dict[int, graph.Override]:
    """Overrides that record each target's tensor into its store (and watch it); ``transform``
    replaces the first target's value (what flows on). Keyed by the graph-level op to override;
    sublayer captures of one composite share one set of twins, innermost."""
    overrides: dict[int, graph.Override] = {}
    nested: dict[int, list] = {}
    for i, ref in enumerate(refs):
        process = _process(stores[i], watch, transform if i == 0 else None)
        if ref.within:
            nested.setdefault(id(ref.within[0]), []).append((ref, process))
    for key, group in nested.items():
        overrides[key] = _through_twins(group)
    for i, ref in enumerate(refs):
        if not ref.within:
            process = _process(stores[i], watch, transform if i == 0 else None)
            fn = _at_call(ref, functools.partial(_wrap, ref, process))
            overrides[id(ref.layer)] = combine(fn, overrides.get(id(ref.layer)))
    return overrides


def combine(outer: graph.Override, inner: graph.Override | None) -> graph.Override:
    """An override that runs ``outer`` around ``inner`` (both ``fn(call, *args, **kwargs)``)."""
    if inner is None:
        return outer
    return lambda call, *a, **kw: outer(lambda *a2, **kw2: inner(call, *a2, **kw2), *a, **kw)


def _wrap(ref: Any, process: Callable, fn: Callable) -> Callable:
    if ref.kind == "input":
        return _on_input(ref.index or 0, process, fn)
    return _on_output(ref.index, process, fn)


def _selector(ref: Any) -> Callable[[], bool]:
    """Counts the op's invocations in one run; true at the one to capture."""
    counter = [0]

    def selected() -> bool:
        index = counter[0]
        counter[0] += 1
        return ref.order_of_call is None or index == ref.order_of_call

    return selected


def _at_call(ref: Any, wrap: Callable[[Callable], Callable]) -> graph.Override:
    """An override of ``ref``'s graph op applying ``wrap`` at the selected call only."""
    selected = _selector(ref)
    return lambda call, *args, **kwargs: (
        wrap(call)(*args, **kwargs) if selected() else call(*args, **kwargs))


def _through_twins(group: list) -> graph.Override:
    """The override of a composite that runs it as twins capturing ``group``'s sublayers."""
    composite = group[0][0].within[0]

    def run(call, *args, **kwargs):
        twins = _Twins()
        for ref, process in group:
            selected = _selector(ref)

            def wrap(fn, ref=ref, process=process, selected=selected):
                captured = _wrap(ref, process, fn)
                return lambda *a, **k: captured(*a, **k) if selected() else fn(*a, **k)

            twins.add((*ref.within, ref.layer), wrap)
        return graph.inference_call(twins.root(composite))(*args, **kwargs)

    return run


def probe_shapes(model: Any, refs: tuple, specs: list) -> list[tuple]:
    """The static shapes of targets that no graph records (sublayers), by tracing the model
    once with them captured (nothing is computed)."""
    stores: list[list] = [[] for _ in refs]
    overrides = interceptors(refs, stores)
    descend = graph.models_containing(model, set(overrides))

    def trace(*inputs):
        return graph.run(model, list(inputs), overrides, descend=descend)

    tf.function(trace, autograph=False).get_concrete_function(*specs)
    return [tuple(store[0].shape) if store and hasattr(store[0], "shape") else ()
            for store in stores]
