"""The Keras internals tf_gradcam relies on, each checked alone (tf_gradcam/engine/_keras.py).

If a Keras release renames or changes one of them, exactly one of these tests fails and says
which; everything else in the package reaches Keras through that module only.
"""

import ast
import pathlib

import keras
import numpy as np
import tensorflow as tf

from tf_gradcam.engine import _keras

L = keras.layers
PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tf_gradcam"


def _tiny():
    inp = keras.Input((4,), name="x")
    a = L.Dense(3, name="a")(inp)
    out = L.Dense(2, name="b")(keras.ops.add(a, a))
    return keras.Model(inp, out)


def test_run_through_graph_with_operation_fn_replaces_one_call():
    model = _tiny()
    x = np.ones((2, 4), np.float32)
    seen = []

    def operation_fn(op):
        if op.name == "a":
            return lambda *args, **kwargs: tf.zeros((2, 3))
        seen.append(op.name)
        return op

    out = _keras.run_through_graph(_keras.functional_graph(model), [tf.constant(x)], operation_fn)
    expected = model.get_layer("b")(tf.zeros((2, 3)))  # a replaced by zeros: add(0, 0) = 0
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert "b" in seen and any(name.startswith("add") for name in seen)


def test_sequential_runs_through_its_functional_twin():
    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    graph = _keras.functional_graph(model)
    assert graph is not None and hasattr(graph, "operations")
    assert _keras.functional_graph(keras.Sequential([L.Dense(2)])) is None  # not built


def test_nodes_producers_and_children():
    model = _tiny()
    dense = model.get_layer("a")
    nodes = _keras.nodes(dense)
    assert len(nodes) == 1 and _keras.node_outputs(nodes[0])[0] is dense.output
    assert _keras.producer(model.outputs[0]) is model.get_layer("b")
    assert _keras.producer(model.inputs[0]).name == "x"

    class Holder(L.Layer):
        def __init__(self):
            super().__init__()
            self.first = L.Dense(2)
            self.rest = [L.Dense(2), L.Dense(2)]

        def call(self, x):
            return self.rest[1](self.rest[0](self.first(x)))

    holder = Holder()
    assert _keras.child_layers(holder) == [holder.first, *holder.rest]


def test_a_twin_shares_the_variables_and_leaves_the_layer_alone():
    dense = L.Dense(2, activation="softmax")
    dense.build((None, 3))
    twin = _keras.share_state(dense)
    _keras.set_attribute(twin, "activation", keras.activations.linear)
    assert dense.activation is keras.activations.softmax
    assert twin.kernel is dense.kernel
    dense.kernel.assign(tf.ones((3, 2)))
    np.testing.assert_allclose(twin(tf.ones((1, 3))), [[3.0, 3.0]])


def test_training_argument_is_read_from_the_call_signature():
    assert _keras.takes_training(L.Dropout(0.5)) and _keras.takes_training(L.BatchNormalization())

    class Plain(L.Layer):
        def call(self, x):
            return x

    assert not _keras.takes_training(Plain())


def test_no_other_module_reaches_into_keras_privates():
    """Every attribute access ``x._name`` on a Keras object lives in _keras.py; elsewhere only
    the package's own private names (``self._steps``) are used."""
    keras_privates = {
        "_run_through_graph", "_functional", "_keras_history", "_inbound_nodes", "_nodes_by_depth",
        "_standardize_inputs", "_inputs_struct", "_call_has_training_arg", "_call_context_args",
        "_flatten_layers", "_layers", "_tracker", "_outbound_nodes",
    }
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_keras.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in keras_privates:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Constant) and node.value in keras_privates:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert not offenders, f"Keras internals outside engine/_keras.py: {offenders}"
