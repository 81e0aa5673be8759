"""Run a Keras model's graph with a few operations' calls replaced, never touching the model.

Every Keras Grad-CAM that builds ``keras.Model(model.inputs, [layer.output, model.output])``
fails with "Graph disconnected" as soon as the layer lives inside a nested model (a
``keras.applications`` backbone wrapped in a ``Sequential``): the inner layer's output belongs to
the inner model's graph, not the outer one. Instead we re-execute the functional graph ourselves,
descending into nested models, and let the caller intercept chosen operations' calls (the
target's capture, the logits under a final softmax, guided ReLUs). The interception happens on
the tensors flowing through one call, so the user's model (its layers, activations, weights,
nodes) is never modified, not even for a moment: a concurrent ``model.predict`` sees nothing.

:func:`trace` runs the same graph on placeholders instead of tensors: the dataflow (which call
reads which value) across nested models, for choosing targets and splitting the network.
Everything here is plain Python that runs at trace time, inside a ``tf.function``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import keras

from tf_gradcam.engine import _keras

# An override receives the operation's own (inference-mode) call and the call's arguments.
Override = Callable[..., Any]


def graph_of(model: Any) -> Any:
    """The functional graph that executes ``model``, or ``None`` (not a graph model)."""
    return _keras.functional_graph(model)


def is_graph_model(obj: Any) -> bool:
    return isinstance(obj, keras.Model) and graph_of(obj) is not None


def operations(model: keras.Model) -> list:
    """The operations of ``model``'s graph in execution order (layers and bare ops such as
    ``keras.ops.add`` nodes; input layers excluded)."""
    graph = graph_of(model)
    ops = graph.operations if graph is not None else model.layers
    return [op for op in ops if not _keras.is_input_layer(op)]


def sublayers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers (not bare operations) of ``model`` in execution order."""
    return [op for op in operations(model) if isinstance(op, keras.layers.Layer)]


def walk(model: keras.Model, prefix: str = "", *, ops: bool = False
         ) -> Iterator[tuple[str, Any, tuple]]:
    """Yield ``(path, layer, parents)`` for every layer, nested models' layers before the model.

    ``path`` is ``"outer/inner/layer"`` relative to ``model`` and ``parents`` the chain of
    nested models from ``model`` (exclusive) down to the layer's own model. With ``ops=True``
    the graphs' bare operations (``add_17``) are yielded too.
    """
    for op in (operations(model) if ops else sublayers(model)):
        path = f"{prefix}{op.name}"
        if is_graph_model(op):
            for sub_path, sub, parents in walk(op, prefix=path + "/", ops=ops):
                yield sub_path, sub, (op,) + parents
        yield path, op, ()


def contains(model: keras.Model, layer: Any) -> bool:
    return any(sub is layer for _, sub, _ in walk(model, ops=True))


def inference_call(op: Any, training: bool = False) -> Callable[..., Any]:
    """``op``'s call with the ``training`` flag fixed, as ``Functional.call`` would pass it."""
    takes_training = _keras.takes_training(op)

    def call(*args, **kwargs):
        if takes_training:
            kwargs["training"] = training
        return op(*args, **kwargs)

    return call


def _graph_inputs(graph: Any, inputs: Any) -> list:
    """``inputs`` (what the model is called with) as one value per ``graph.inputs``."""
    keys = _keras.input_keys(graph)
    if keys is not None and isinstance(inputs, dict):
        return [inputs[k] for k in keys]
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    if isinstance(inputs, dict):  # a list-input model called with a dict keyed by input names
        return [inputs[t.name] for t in graph.inputs]
    return [inputs]


def run(
    model: keras.Model,
    inputs: Any,
    overrides: Mapping[int, Override],
    *,
    descend: frozenset[int] = frozenset(),
    training: bool = False,
) -> Any:
    """Execute ``model`` on ``inputs`` (real tensors), replacing the calls of some operations.

    Args:
        model: a built functional or ``Sequential`` model.
        inputs: what ``model`` would be called with (one tensor, a list, or a dict).
        overrides: ``id(op) -> fn(call, *args, **kwargs)``; ``call`` is the op's own call.
        descend: ids of nested models that contain an overridden op; only these are
            re-executed op by op, every other layer or model runs as one call.
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
        key = id(op)
        if key in descend:
            # A nested model holding an overridden op runs op by op; an override of the nested
            # model itself (its capture) wraps that re-execution.
            def call(*args, **kwargs):
                return run(op, args[0] if len(args) == 1 else list(args), overrides,
                           descend=descend, training=training)
        else:
            call = inference_call(op, training)
        if key in overrides:
            fn = overrides[key]
            return lambda *args, **kwargs: fn(call, *args, **kwargs)
        return call

    flat = [
        keras.ops.cast(x, t.dtype) if hasattr(x, "dtype") and x.dtype != t.dtype else x
        for x, t in zip(_graph_inputs(graph, inputs), graph.inputs)
    ]
    outputs = _keras.run_through_graph(graph, flat, operation_fn)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        return outputs[0]
    return outputs


def input_names(model: keras.Model) -> list[str]:
    """A name per model input, in the order of ``model.inputs``: the dict key for a model built
    on a dict of inputs (what users pass), else the input's own name."""
    g = graph_of(model)
    keys = _keras.input_keys(g)
    if keys is not None:
        return keys
    # The InputLayer's name ("image", or "input_layer_2"), never the tensor's ("keras_tensor_35").
    return [getattr(_keras.producer(t), "name", None) or t.name for t in g.inputs]


def models_containing(model: keras.Model, op_ids: set[int]) -> frozenset[int]:
    """Ids of the nested models (at any depth) of ``model`` that contain an op of ``op_ids``."""
    found: set[int] = set()
    for _, op, parents in walk(model, ops=True):
        if id(op) in op_ids:
            found.update(id(p) for p in parents)
    return frozenset(found)


def without_activation(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A twin of ``layer`` that shares its weights but applies no activation.

    The twin points at the very same variables, so it computes what ``layer`` computes *now*
    before its activation, and keeps doing so as training updates them.
    """
    twin = _keras.share_state(layer)
    _keras.set_attribute(twin, "activation", keras.activations.linear)
    return twin


# ---------------------------------------------------------------------------- dataflow
class Value:
    """A placeholder for one tensor flowing through :func:`trace`: compared by identity.

    ``shape`` is the static shape (batch first) of the symbolic tensor it stands for."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple = (), dtype: Any = None) -> None:
        self.shape = shape
        self.dtype = dtype


@dataclass(frozen=True)
class Call:
    """One operation call seen by :func:`trace`: the values it consumed and produced, and which
    of the op's calls it is (its index in construction order, 0 for an op called once)."""

    op: Any
    inputs: tuple
    outputs: tuple
    index: int = 0
    parents: tuple = ()  # the nested models around the call, outermost first
    parent_calls: tuple = ()  # which call of each of those models it runs in (node indices)
    order: int = 0  # position in execution order

    @property
    def layer(self) -> Any:  # the name older code used
        return self.op


def _node_index(op: Any, symbolic_inputs: list) -> tuple[int, list]:
    """``(index of the node of op that reads these KerasTensors, its output tensors)``."""
    ids = [id(t) for t in symbolic_inputs]
    nodes = _keras.nodes(op)
    for i, node in enumerate(nodes):
        if [id(t) for t in _keras.node_inputs(node)] == ids:
            return i, _keras.node_outputs(node)
    return 0, _keras.node_outputs(nodes[0]) if nodes else []


def trace(model: keras.Model) -> tuple[list[Call], list[Value], list[Value]]:
    """The dataflow of ``model`` across nested models: every call, the model's output values and
    its input values (one per ``model.inputs``).

    A nested model passes its arguments to its inner ops and returns their outputs as the very
    same :class:`Value` objects, so an op feeding a pooling layer that lives one model further
    out (``Sequential([backbone, GlobalAveragePooling2D(), Dense(...)])``) is found as easily
    as in a flat model. Each nested model's own call is listed after its inner calls. Nothing
    is computed: placeholders flow instead of tensors, and the model is not touched.
    """
    calls: list[Call] = []

    def run_graph(m: keras.Model, args: list, parents: tuple, parent_calls: tuple) -> Any:
        g = graph_of(m)
        symbolic = {id(v): t for v, t in zip(args, g.inputs)}

        def operation_fn(op):
            def call(*a, **kw):
                consumed = tuple(v for v in _keras.flatten((a, kw)) if isinstance(v, Value))
                index, sym_out = _node_index(op, [symbolic.get(id(v)) for v in consumed])
                if is_graph_model(op):
                    out = run_graph(op, list(consumed), parents + (op,), parent_calls + (index,))
                    flat_out = _keras.flatten(out)
                else:
                    flat_out = [Value(tuple(t.shape), t.dtype) for t in sym_out] or [Value()]
                    out = flat_out[0] if len(flat_out) == 1 else list(flat_out)
                for v, t in zip(flat_out, sym_out):
                    symbolic[id(v)] = t
                calls.append(Call(op, consumed, tuple(flat_out), index, parents, parent_calls,
                                  len(calls)))
                return out

            return call

        return _keras.run_through_graph(g, list(args), operation_fn)

    roots = [Value(tuple(t.shape), t.dtype) for t in graph_of(model).inputs]
    outputs = run_graph(model, roots, (), ())
    return calls, list(_keras.flatten(outputs)), roots


def input_ancestors(model: keras.Model, value_of: Callable[[list[Call]], list[Value]]
                    ) -> list[int]:
    """Indices into ``model.inputs`` of the inputs the values ``value_of(calls)`` depend on."""
    calls, _, roots = trace(model)
    producer = {id(v): c for c in calls for v in c.outputs}
    found: set[int] = set()
    stack = list(value_of(calls))
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


def upstream_of(model: keras.Model, op: Any) -> frozenset[int] | None:
    """Ids of the ops (and nested models) whose outputs do not depend on ``op``'s output: the
    part of the network a change of ``op``'s activations cannot reach. ``op`` itself and the
    nested models around it are excluded. ``None`` when an op runs more than once (shared
    layers make "its output" ambiguous)."""
    calls, _, _ = trace(model)
    ids = [id(c.op) for c in calls]
    if len(ids) != len(set(ids)):
        return None
    downstream: set[int] = set()
    for call in calls:
        if call.op is op:
            downstream.update(id(v) for v in call.outputs)
        elif any(id(v) in downstream for v in call.inputs):
            downstream.update(id(v) for v in call.outputs)
    around = models_containing(model, {id(op)})
    return frozenset(
        id(c.op) for c in calls
        if c.op is not op and id(c.op) not in around
        and not any(id(v) in downstream for v in c.outputs)
    )
