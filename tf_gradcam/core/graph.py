"""Run a Keras model's graph with a few layers' calls replaced, never touching the model.

Every Keras Grad-CAM that builds ``keras.Model(model.inputs, [layer.output, model.output])``
fails with "Graph disconnected" as soon as the layer lives inside a nested model (a
``keras.applications`` backbone wrapped in a ``Sequential``): the inner layer's output belongs to
the inner model's graph, not the outer one. Instead we re-execute the functional graph ourselves,
descending into nested models, and let the caller intercept chosen layers' calls:

* the target layer, to record (and watch, or replace) its activations;
* the final softmax, to read the logits under it;
* ReLUs, for guided backpropagation.

The interception happens on the tensors flowing through one call, so the user's model (its
layers, activations, weights, nodes) is never modified, not even for a moment: a concurrent
``model.predict`` sees nothing. Everything here is plain Python that runs once, at trace time,
inside a ``tf.function``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import keras
from keras import tree

# An override receives the layer's own (inference-mode) call and the call's arguments.
Override = Callable[..., Any]


def graph_of(model: keras.Model):
    """The functional graph that executes ``model``, or ``None`` for a subclassed model."""
    if isinstance(model, keras.Sequential):
        # Keras 3 builds a Functional twin of a Sequential once its input shape is known.
        return getattr(model, "_functional", None)
    if hasattr(model, "_run_through_graph") and hasattr(model, "_nodes_by_depth"):
        return model
    return None


def is_graph_model(obj: Any) -> bool:
    return isinstance(obj, keras.Model) and graph_of(obj) is not None


def sublayers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of ``model`` in execution order (input layers excluded)."""
    graph = graph_of(model)
    layers = graph.layers if graph is not None else model.layers
    return [lyr for lyr in layers if not isinstance(lyr, keras.layers.InputLayer)]


def walk(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, keras.layers.Layer, tuple]]:
    """Yield ``(path, layer, parents)`` for every layer, nested models' layers before the model.

    ``path`` is ``"outer/inner/layer"`` relative to ``model`` and ``parents`` the chain of
    nested models from ``model`` (exclusive) down to the layer's own model.
    """
    for layer in sublayers(model):
        path = f"{prefix}{layer.name}"
        if is_graph_model(layer):
            for sub_path, sub, parents in walk(layer, prefix=path + "/"):
                yield sub_path, sub, (layer,) + parents
        yield path, layer, ()


def contains(model: keras.Model, layer: keras.layers.Layer) -> bool:
    return any(sub is layer for _, sub, _ in walk(model))


def inference_call(op: Any, training: bool = False) -> Callable[..., Any]:
    """``op``'s call with the ``training`` flag fixed, as ``Functional.call`` would pass it."""
    context_args = getattr(op, "_call_context_args", None)
    takes_training = (
        "training" in context_args
        if context_args is not None
        else bool(getattr(op, "_call_has_training_arg", False))
    )

    def call(*args, **kwargs):
        if takes_training:
            kwargs["training"] = training
        return op(*args, **kwargs)

    return call


def run(
    model: keras.Model,
    inputs: Any,
    overrides: Mapping[int, Override],
    *,
    descend: frozenset[int] = frozenset(),
    training: bool = False,
) -> Any:
    """Execute ``model`` on ``inputs`` (real tensors), replacing the calls of some layers.

    Args:
        model: a built functional or ``Sequential`` model.
        inputs: what ``model`` would be called with.
        overrides: ``id(layer) -> fn(call, *args, **kwargs)``; ``call`` is the layer's own call.
        descend: ids of nested models that contain an overridden layer; only these are
            re-executed layer by layer, every other layer or model runs as one call.
        training: the ``training`` flag given to every layer (inference by default).

    Returns:
        The model's outputs, in the structure ``model(inputs)`` returns them.
    """
    graph = graph_of(model)
    if graph is None:
        raise TypeError(
            f"Model {model.name!r} is a subclassed model whose layers cannot be reached from its "
            "inputs. Build it with the functional API or keras.Sequential to explain inner layers."
        )

    def operation_fn(op):
        call = inference_call(op, training)
        key = id(op)
        if key in overrides:
            fn = overrides[key]
            return lambda *args, **kwargs: fn(call, *args, **kwargs)
        if key in descend:
            return lambda *args, **kwargs: run(
                op, args[0] if len(args) == 1 else list(args), overrides,
                descend=descend, training=training,
            )
        return call

    if isinstance(inputs, (list, tuple)) and len(inputs) == 1 and len(graph.inputs) == 1:
        inputs = inputs[0]  # Keras warns when a single input arrives wrapped in a list
    elif isinstance(graph._inputs_struct, dict) and isinstance(inputs, (list, tuple)):
        # A dict-input model wants its dict back (keys in flattened, i.e. sorted, order).
        inputs = tree.pack_sequence_as(graph._inputs_struct, list(inputs))
    flat = graph._standardize_inputs(inputs)
    outputs = graph._run_through_graph(flat, operation_fn=operation_fn)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        return outputs[0]
    return outputs


def input_names(model: keras.Model) -> list[str]:
    """A name per model input, in the order of ``model.inputs``: the dict key for a model built
    on a dict of inputs (what users pass), else the input tensor's name."""
    g = graph_of(model)
    if isinstance(g._inputs_struct, dict):
        return [str(path[0]) for path, _ in tree.flatten_with_path(g._inputs_struct)]
    return [t.name for t in g.inputs]


def input_ancestors(model: keras.Model, layer: keras.layers.Layer) -> list[int]:
    """Indices into ``model.inputs`` of the inputs that ``layer``'s output depends on."""
    calls, _, roots = trace(model)
    producer = {id(v): c for c in calls for v in c.outputs}
    found: set[int] = set()
    for call in calls:
        if call.layer is not layer:
            continue
        stack = list(call.inputs)
        seen: set[int] = set()
        while stack:
            value = stack.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            if id(value) in producer:
                stack.extend(producer[id(value)].inputs)
            for i, root in enumerate(roots):
                if value is root:
                    found.add(i)
    return sorted(found)


def models_containing(model: keras.Model, layer_ids: set[int]) -> frozenset[int]:
    """Ids of the nested models (at any depth) of ``model`` that contain a layer of ``layer_ids``."""
    found: set[int] = set()
    for _, layer, parents in walk(model):
        if id(layer) in layer_ids:
            found.update(id(p) for p in parents)
    return frozenset(found)


def without_activation(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A twin of ``layer`` that shares its weights but applies no activation.

    A shallow copy of the attribute dict: the twin points at the very same variables, so it
    computes what ``layer`` computes *now* before its activation, and keeps doing so as training
    updates them. (``copy.copy`` would not do: Keras layers pickle themselves through
    ``__reduce__``, a save-and-load that snapshots the weights.) Only the twin's ``activation``
    slot differs; ``object.__setattr__`` keeps Keras' attribute tracker (shared with the
    original) out of it.
    """
    twin = object.__new__(type(layer))
    object.__setattr__(twin, "__dict__", dict(layer.__dict__))
    object.__setattr__(twin, "activation", keras.activations.linear)
    return twin


class Value:
    """A placeholder for one tensor flowing through :func:`trace`: compared by identity."""

    __slots__ = ()


@dataclass(frozen=True)
class Call:
    """One layer call seen by :func:`trace`: the values it consumed and produced."""

    layer: keras.layers.Layer
    inputs: tuple
    outputs: tuple


def trace(model: keras.Model) -> tuple[list[Call], list[Value], list[Value]]:
    """The dataflow of ``model`` across nested models: every call, the model's output values and
    its input values (one per ``model.inputs``).

    A nested model passes its arguments to its inner layers and returns their outputs as the
    very same :class:`Value` objects, so a layer feeding a pooling layer that lives one model
    further out (``Sequential([backbone, GlobalAveragePooling2D(), Dense(...)])``) is found as
    easily as in a flat model. Each nested model's own call is listed after its inner calls.
    Nothing is computed: placeholders flow instead of tensors, and the model is not touched.
    """

    calls: list[Call] = []

    def run_graph(m: keras.Model, args: Any) -> Any:
        g = graph_of(m)
        if isinstance(args, dict):
            args = [args[t.name] for t in g.inputs]

        def operation_fn(op):
            def call(*a, **kw):
                consumed = tuple(v for v in tree.flatten((a, kw)) if isinstance(v, Value))
                if is_graph_model(op):
                    out = run_graph(op, a[0] if len(a) == 1 else list(a))
                else:
                    nodes = getattr(op, "_inbound_nodes", None) or []
                    n_out = len(nodes[0].outputs) if nodes else 1
                    out = Value() if n_out == 1 else [Value() for _ in range(n_out)]
                calls.append(Call(op, consumed, tuple(tree.flatten(out))))
                return out

            return call

        return g._run_through_graph(tree.flatten(args), operation_fn=operation_fn)

    roots = [Value() for _ in graph_of(model).inputs]
    outputs = run_graph(model, roots)
    return calls, list(tree.flatten(outputs)), roots


def upstream_of(model: keras.Model, layer: keras.layers.Layer) -> frozenset[int] | None:
    """Ids of the layers (and nested models) whose outputs do not depend on ``layer``'s output:
    the part of the network a change of ``layer``'s activations cannot reach. ``layer`` itself
    and the nested models around it are excluded. ``None`` when a layer runs more than once
    (shared layers make "its output" ambiguous)."""
    calls, _, _ = trace(model)
    ids = [id(c.layer) for c in calls]
    if len(ids) != len(set(ids)):
        return None
    downstream: set[int] = set()
    for call in calls:
        if call.layer is layer:
            downstream.update(id(v) for v in call.outputs)
        elif any(id(v) in downstream for v in call.inputs):
            downstream.update(id(v) for v in call.outputs)
    around = models_containing(model, {id(layer)})
    return frozenset(
        id(c.layer) for c in calls
        if c.layer is not layer and id(c.layer) not in around
        and not any(id(v) in downstream for v in c.outputs)
    )
