"""Every use of Keras internals, in one place: the rest of the package calls these functions.

Keras 3 has no public way to re-execute a functional graph with some operations' calls replaced
(``Functional._run_through_graph(..., operation_fn=)``), nor to enumerate a graph's nodes with
their arguments. Everything else here has a public spelling and uses it. Each function says what
it relies on and the Keras versions it was checked on; ``tests/test_keras_canary.py`` fails in
one clear place if a Keras release changes one of them.

Checked on Keras 3.8.0 (with TensorFlow 2.16) and 3.15.1 (with TensorFlow 2.21).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import keras
from keras import tree

Operation = Any  # keras.Operation; a Layer is one


def functional_graph(model: Any) -> Any:
    """The functional graph that executes ``model`` (a ``Functional``), or ``None``.

    A ``Sequential`` with a known input shape runs through a Functional twin it builds for itself
    (private attribute ``_functional``, Keras 3.0-3.15); a functional model is its own graph
    (recognised by ``_run_through_graph`` and ``operations``); a subclassed model has none.
    """
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if isinstance(model, keras.Model) and hasattr(model, "_run_through_graph") and hasattr(
            model, "_nodes_by_depth"):
        return model
    return None


def run_through_graph(graph: Any, flat_inputs: list, operation_fn: Callable) -> Any:
    """Execute ``graph`` on ``flat_inputs`` (one tensor per ``graph.inputs``), calling
    ``operation_fn(op)(*args, **kwargs)`` at every node; returns the outputs in the graph's
    output structure. THE private entry point: ``Function._run_through_graph(inputs,
    operation_fn=)``, present with this signature in Keras 3.0 to 3.15."""
    return graph._run_through_graph(flat_inputs, operation_fn=operation_fn)


def input_structure(graph: Any) -> Any:
    """The structure the graph was built on (a KerasTensor, a list or a dict of them): the
    public ``Functional.input``."""
    return graph.input


def flatten(structure: Any) -> list:
    return tree.flatten(structure)


def pack_like(structure: Any, flat: list) -> Any:
    return tree.pack_sequence_as(structure, flat)


def input_keys(graph: Any) -> list[str] | None:
    """For a model built on a dict of inputs, its keys in the order of ``graph.inputs``
    (flattening a dict sorts its keys); else ``None``."""
    struct = input_structure(graph)
    if isinstance(struct, dict):
        return sorted(str(k) for k in struct)
    return None


def takes_training(op: Operation) -> bool:
    """Whether ``op.call`` has a ``training`` argument (public: the call's signature)."""
    call = getattr(op, "call", None)
    if call is None:
        return False
    try:
        params = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False
    return "training" in params


def producer(tensor: Any) -> Operation | None:
    """The operation that produced the symbolic ``tensor`` (``KerasTensor._keras_history``,
    Keras 3.0-3.15), or ``None`` for a graph input."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


def nodes(op: Operation) -> list:
    """The calls of ``op`` recorded while graphs were built, in construction order
    (``Operation._inbound_nodes``, Keras 3.0-3.15). Each has ``input_tensors`` and
    ``output_tensors``."""
    return list(getattr(op, "_inbound_nodes", None) or [])


def node_inputs(node: Any) -> list:
    return list(node.input_tensors)


def node_outputs(node: Any) -> list:
    return list(node.output_tensors)


def child_layers(layer: Any) -> list:
    """The layers a layer holds directly (tracked as attributes, lists or dicts), in the order
    they were assigned: ``Layer._flatten_layers(include_self=False, recursive=False)``,
    Keras 3.0-3.15."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


def share_state(layer: Any) -> Any:
    """A twin of ``layer``: a new object of its class sharing a *copy* of its attribute dict, so
    it points at the very same variables and sublayers but attributes set on it (with
    :func:`set_attribute`) are its own. ``copy.copy`` must not be used: Keras layers pickle
    themselves through ``__reduce__``, a save-and-load that snapshots the weights."""
    twin = object.__new__(type(layer))
    object.__setattr__(twin, "__dict__", dict(layer.__dict__))
    return twin


def set_attribute(obj: Any, name: str, value: Any) -> None:
    """Set an attribute of a twin without Keras' attribute tracker (shared with the original)
    seeing it: ``object.__setattr__`` bypasses ``Layer.__setattr__``."""
    object.__setattr__(obj, name, value)


def is_input_layer(layer: Any) -> bool:
    return isinstance(layer, keras.layers.InputLayer)


def nested_layers(layer: Any) -> list:
    """``layer`` and every layer it holds, at any depth:
    ``Layer._flatten_layers(include_self=True, recursive=True)``, Keras 3.0-3.15."""
    return list(layer._flatten_layers(include_self=True, recursive=True))


def own_variables(layer: Any, trainable: bool = True) -> list:
    """The variables ``layer`` created itself, not its sublayers': ``Layer._trainable_variables``
    (or ``_non_trainable_variables``), Keras 3.0-3.15. A layer frozen with ``trainable=False``
    lists its weights as non-trainable."""
    if not layer.trainable:
        return [] if trainable else list(layer._trainable_variables) + list(
            layer._non_trainable_variables)
    return list(layer._trainable_variables if trainable else layer._non_trainable_variables)
