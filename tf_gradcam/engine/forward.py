"""One batch through the model: capture the target, score it, take gradients, build contexts.

:class:`Forward` is built inside the compiled step for one batch. Its main pass re-executes the
model once (:func:`tf_gradcam.engine.graph.run`) with the target tensors captured and, for
gradient methods, watched by a ``GradientTape`` (so the backward pass stops at the target), then
hands each method a :class:`~tf_gradcam.engine.context.Context` of ``B * k`` rows. It is also
the services behind the context: rescoring modified inputs or activations, and input gradients.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable

import tensorflow as tf

from tf_gradcam.choose import targets as targets_lib
from tf_gradcam.choose.scores import probability_fn
from tf_gradcam.engine import graph
from tf_gradcam.engine.context import Context

if TYPE_CHECKING:
    from tf_gradcam.engine.explainer import Explainer


def compose(outer: graph.Override, inner: graph.Override | None) -> graph.Override:
    """An override that runs ``outer`` around ``inner`` (both ``fn(call, *args, **kwargs)``)."""
    if inner is None:
        return outer
    return lambda call, *a, **kw: outer(lambda *a2, **kw2: inner(call, *a2, **kw2), *a, **kw)


def _capture(store: list, watch: Callable | None, transform: Callable | None) -> graph.Override:
    """An override recording (watching, or replacing by ``transform``) an op's output."""

    def fn(call, *args, **kwargs):
        out = call(*args, **kwargs)
        if transform is not None:
            out = transform(out)
        if watch is not None:
            watch(out)
        store.append(out)
        return out

    return fn


class Forward:
    """The forward machinery of one batch of ``B`` samples with ``k`` targets each."""

    def __init__(self, explainer: Explainer, inputs: list, codes: tf.Tensor, fn: Any) -> None:
        self.explainer = explainer
        self.inputs = list(inputs)
        self.codes = codes  # [B, k] int32 class codes (zeros for a callable)
        self.fn = fn  # the callable target, or None
        self.k = int(codes.shape[1])
        self.cache: dict[int, Any] = {}
        self.targets_rows: tf.Tensor | None = None

    # ------------------------------------------------------------------ running the model
    def run(self, inputs: list, *, watch: Callable | None = None, transform: Callable | None = None,
            overrides: dict | None = None, capture: bool = True) -> tuple[list, Any]:
        """Run the model on ``inputs``; return the captured target tensors (one per target) and
        the (scored) outputs. ``transform`` replaces the first target's value (what flows on)."""
        ex = self.explainer
        all_overrides = {**ex.score_overrides, **(overrides or {})}
        stores: list[list] = []
        if capture:
            for i, ref in enumerate(ex.layer_refs):
                store: list = []
                stores.append(store)
                key = id(ref.layer)
                all_overrides[key] = compose(
                    _capture(store, watch, transform if i == 0 else None), all_overrides.get(key))
        descend = graph.models_containing(ex.model, set(all_overrides))
        outputs = graph.run(ex.model, list(inputs), all_overrides, descend=descend)
        for ref, store in zip(ex.layer_refs, stores):
            if len(store) != 1:
                raise ValueError(
                    f"Layer {ref.path!r} is called {len(store)} times in the model (a shared "
                    "layer or backbone, as in a siamese network); pick a layer that runs once "
                    "per forward pass, or explain the shared model on its own: "
                    "tfg.GradCAM(backbone)."
                )
        return [store[0] for store in stores], outputs

    def score(self, outputs: Any, codes: tf.Tensor, probability: bool = False
              ) -> tuple[tf.Tensor, tf.Tensor]:
        """``([R, k] float32 scores, [R, k] int32 classes)`` of ``outputs`` for ``codes``."""
        if self.fn is not None:
            scores = targets_lib.check_callable_scores(self.fn(outputs), outputs)
            scores = tf.cast(scores, tf.float32)[:, None]
            return scores, tf.fill(tf.shape(scores), tf.constant(-1, tf.int32))
        logits = tf.cast(outputs, tf.float32)
        scores, chosen = self.explainer.class_scores(logits, codes)
        if probability and self.explainer.score == "logits":
            scores = tf.gather(probability_fn(self.explainer.head_info)(logits), chosen,
                               axis=1, batch_dims=1)
        return scores, chosen

    # ------------------------------------------------------------------ the main pass
    def contexts(self) -> list[Context]:
        """One :class:`Context` per target (several when fusing layers), from one forward pass
        and, for gradient methods, one backward pass per class."""
        acts, outputs, scores, chosen, grads, hessian = self._differentiate(None, self.codes)
        self.targets_rows = tf.reshape(chosen, [-1])
        return [
            Context(
                inputs=[self.rows(x) for x in self.inputs],
                activations=self.rows(tf.cast(act, tf.float32)),
                gradients=grad,
                targets=self.targets_rows,
                scores=tf.reshape(scores, [-1]),
                outputs=tf.nest.map_structure(self.rows, outputs),
                services=self,
                hessian_activations=hessian if i == 0 else None,
            )
            for i, (act, grad) in enumerate(zip(acts, grads))
        ]

    def _differentiate(self, inputs: list | None, codes: tf.Tensor) -> tuple:
        """``(activations, outputs, scores, chosen, gradients, H.A)`` of one forward pass (the
        batch's main pass for ``inputs=None``) and, for gradient methods, one backward pass per
        class; gradients come as ``[R * k, ...]`` rows. ``H.A`` (the Hessian of the score with
        respect to the first target, applied to its activations) only for ``uses_hessian``."""
        ex = self.explainer
        k = int(codes.shape[1])

        def forward(watch):
            if inputs is None:
                return self._main_pass(watch)
            return self.run(inputs, watch=watch, overrides=ex.overrides())

        if not ex.uses_gradients:
            acts, outputs = forward(None)
            scores, chosen = self.score(outputs, codes)
            return acts, outputs, scores, chosen, [None] * len(acts), None
        with contextlib.ExitStack() as stack:
            # The Hessian-vector product differentiates the backward pass once more: an outer
            # tape records it (forward-over-backward would need the same second pass).
            outer = (stack.enter_context(tf.GradientTape(watch_accessed_variables=False,
                                                         persistent=k > 1))
                     if ex.uses_hessian else None)
            # Watching only the activations keeps the tape (and so the backward pass) to the
            # part of the network after the target, and works for frozen layers too.
            with tf.GradientTape(watch_accessed_variables=False, persistent=k > 1) as tape:
                def watch(t, tapes=(tape, outer)):
                    for watching in tapes:
                        if watching is not None:
                            watching.watch(t)

                acts, outputs = forward(watch)
                scores, chosen = self.score(outputs, codes)
                objective = -scores if ex.counterfactual else scores
                columns = [objective[:, j] for j in range(k)]  # sliced on the tape
            per_class = [tape.gradient(column, acts) for column in columns]
            del tape
            for ref, grad in zip(ex.layer_refs or (None,), per_class[0]):
                if grad is None:
                    raise ValueError(self._no_gradient(ref))
            products = [tf.reduce_sum(g[0] * tf.stop_gradient(acts[0])) for g in per_class]
        hessian = None
        if outer is not None:
            # A score linear in the activations (a Dense head after pooling) leaves the
            # gradient unconnected to them: its Hessian is 0, not missing.
            zero = tf.UnconnectedGradients.ZERO
            hessian = self._rows_of_classes(
                [tf.cast(outer.gradient(p, acts[0], unconnected_gradients=zero), tf.float32)
                 for p in products], k)
        grads = [self._rows_of_classes([tf.cast(g[i], tf.float32) for g in per_class], k)
                 for i in range(len(acts))]
        return acts, outputs, scores, chosen, grads, hessian

    def _main_pass(self, watch: Callable | None) -> tuple[list, Any]:
        """The batch's one forward pass: the targets captured (the spatial input itself for a
        method that explains the input), the method's own overrides applied."""
        ex = self.explainer
        overrides = {**ex.overrides(), **(self._recorders() if ex.rescores_activations else {})}
        if ex.uses_layer:
            return self.run(self.inputs, watch=watch, overrides=overrides)
        x = self.inputs[ex.spatial_input]
        if watch is not None:
            watch(x)
        _, outputs = self.run(self.inputs, overrides=overrides, capture=False)
        return [x], outputs

    def rows(self, x: tf.Tensor) -> tf.Tensor:
        """``[B, ...] -> [B * k, ...]``: each sample repeated once per class (sample-major)."""
        return x if self.k == 1 else tf.repeat(x, self.k, axis=0)

    def _rows_of_classes(self, per_class: list, k: int) -> tf.Tensor:
        """``k`` tensors ``[B, ...]`` (one per class) -> ``[B * k, ...]``, sample-major."""
        if k == 1:
            return per_class[0]
        stacked = tf.stack(per_class, axis=1)
        return tf.reshape(stacked, tf.concat([[-1], tf.shape(stacked)[2:]], 0))

    def sample_of(self, rows: tf.Tensor) -> tf.Tensor:
        return rows // self.k

    # ------------------------------------------------------------------ services
    def _row_codes(self, rows: tf.Tensor) -> tf.Tensor:
        """``[R, 1]`` the class each row explains (already resolved from rank codes)."""
        return tf.gather(self.targets_rows, rows)[:, None]

    def _score_rows(self, outputs: Any, rows: tf.Tensor, probability: bool) -> tf.Tensor:
        scores, _ = self.score(outputs, self._row_codes(rows), probability)
        return scores[:, 0]

    def rescore_inputs(self, inputs: list, rows: tf.Tensor, probability: bool) -> tf.Tensor:
        _, outputs = self.run(inputs, capture=False)
        return self._score_rows(outputs, rows, probability)

    def rescore_activations(self, transform: Callable, rows: tf.Tensor,
                            probability: bool) -> tf.Tensor:
        return self._score_rows(self.outputs_with_activations(transform, rows), rows,
                                probability)

    def outputs_with_activations(self, transform: Callable, rows: tf.Tensor) -> Any:
        samples = self.sample_of(rows)
        inputs = [tf.gather(x, samples) for x in self.inputs]
        replay = {key: self._cached(key, samples) for key in self.cache}
        _, outputs = self.run(inputs, transform=transform, overrides=replay)
        return outputs

    def gradients_at(self, inputs: list, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        acts, _, _, _, grads, _ = self._differentiate(inputs, self._row_codes(rows))
        return tf.cast(acts[0], tf.float32), grads[0]

    def input_gradients(self, overrides: dict) -> tf.Tensor:
        ex = self.explainer
        inputs = list(self.inputs)
        x = inputs[ex.spatial_input]
        with tf.GradientTape(watch_accessed_variables=False, persistent=self.k > 1) as tape:
            tape.watch(x)
            _, outputs = self.run(inputs, overrides=overrides, capture=False)
            scores, _ = self.score(outputs, self.codes)
            objective = -scores if ex.counterfactual else scores
            columns = [objective[:, j] for j in range(self.k)]
        per_class = [tape.gradient(column, x) for column in columns]
        del tape
        if per_class[0] is None:
            raise ValueError(self._no_gradient(None))
        return self._rows_of_classes([tf.cast(g, tf.float32) for g in per_class], self.k)

    def _no_gradient(self, ref: Any) -> str:
        if ref is not None:
            return (f"The explained score does not depend on layer {ref.path!r} (no gradient "
                    "path); choose a layer that feeds the output you explain.")
        x = self.inputs[self.explainer.spatial_input]
        return (f"The explained score has no gradient with respect to the model input of dtype "
                f"{x.dtype.name} and shape {x.shape}; guided backpropagation needs a float input "
                "that the score depends on.")

    # ------------------------------------------------------------------ the replay cache
    def _recorders(self) -> dict:
        """Overrides recording, in the main pass, every op a change of the target cannot
        reach, so :meth:`rescore_activations` runs only the layers after the target (skip
        connections that jump over it read the recorded tensors). Without that split (a
        shared layer), nothing is recorded: each rescoring runs the whole network."""
        layer = self.explainer.layer
        upstream = graph.upstream_of(self.explainer.model, layer)
        if upstream is None:
            return {}
        upstream = upstream | {id(layer)}  # the target itself: each copy starts from its value

        def record(key):
            def fn(call, *args, **kwargs):
                self.cache[key] = call(*args, **kwargs)
                return self.cache[key]
            return fn

        return {key: record(key) for key in upstream}

    def _cached(self, key: int, samples: tf.Tensor) -> graph.Override:
        return lambda call, *args, **kwargs: tf.nest.map_structure(
            lambda t: tf.gather(t, samples), self.cache[key])
