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
from tf_gradcam.engine import diagnose, graph
from tf_gradcam.engine.capture import combine, interceptors
from tf_gradcam.engine.context import Context

if TYPE_CHECKING:
    from tf_gradcam.engine.explainer import Explainer


class Forward:
    """The forward machinery of one batch of ``B`` samples with ``k`` targets each."""

    def __init__(self, explainer: Explainer, inputs: list, codes: tf.Tensor, fn: Any,
                 target: Any = None, values: dict | None = None) -> None:
        self.explainer = explainer
        self.inputs = list(inputs)
        self.codes = codes  # [B, k] int32 class codes (zeros for a callable)
        self.fn = fn  # the callable target, or None
        self.target = target  # a ready-made target, or None
        self.values = dict(values or {})  # its values for the batch
        self.k = int(codes.shape[1])
        self.cache: dict[int, Any] = {}
        self.targets_rows: tf.Tensor | None = None
        self.diagnostics: dict = {}  # [R] bool flags of why a map may be empty
        # For each sample, the sample whose logits rank the classes (aug_smooth: the
        # unaugmented copy), or None: its own.
        self.rank_samples: tf.Tensor | None = None

    # ------------------------------------------------------------------ running the model
    def run(self, inputs: list, *, watch: Callable | None = None, transform: Callable | None = None,
            overrides: dict | None = None, capture: bool = True) -> tuple[list, Any]:
        """Run the model on ``inputs``; return the captured target tensors (one per target) and
        the (scored) outputs. ``transform`` replaces the first target's value (what flows on)."""
        ex = self.explainer
        all_overrides = {**ex.score_overrides, **(overrides or {})}
        refs = ex.layer_refs if capture else ()
        stores: list[list] = [[] for _ in refs]
        for key, fn in interceptors(refs, stores, watch=watch, transform=transform).items():
            all_overrides[key] = combine(fn, all_overrides.get(key))
        descend = graph.models_containing(ex.model, set(all_overrides))
        outputs = graph.run(ex.model, list(inputs), all_overrides, descend=descend)
        for ref, store in zip(refs, stores):
            if not store:
                raise ValueError(f"{ref.path!r} never ran when the model ran: nothing to explain.")
        return [store[0] for store in stores], outputs

    def score(self, outputs: Any, codes: tf.Tensor, probability: bool = False,
              samples: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """``([R, k] float32 scores, [R, k] int32 classes)`` of ``outputs`` for ``codes``
        (``samples``: the batch sample of each row, when the rows are copies of them)."""
        if self.target is not None:
            values = self.values
            if samples is not None:  # rescoring copies: each row takes its sample's values
                values = {k: tf.gather(v, samples) if k in self.target.per_sample else v
                          for k, v in values.items()}
            scores = tf.cast(self.target.score(outputs, values), tf.float32)
            batch = tf.shape(scores)[0]
            return scores[:, None], self.target.classes(values, batch)[:, None]
        if self.fn is not None:
            scores = targets_lib.check_callable_scores(self.fn(outputs), outputs)
            scores = tf.cast(scores, tf.float32)[:, None]
            return scores, tf.fill(tf.shape(scores), tf.constant(-1, tf.int32))
        logits = self.explainer.head_info.class_scores(outputs, self.explainer.score)
        if self.rank_samples is not None and samples is None:
            codes = targets_lib.resolve_ranks(tf.gather(logits, self.rank_samples), codes)
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
        refs = self.explainer.layer_refs or (None,)
        if refs[0] is not None:
            self.diagnostics = diagnose.flags(refs[0], self.rows(acts[0]), grads[0], tf.identity)
        head = self.explainer.head_info
        if self.explainer.score == "logits" and not self.explainer.score_overrides and (
                head.units or 0) > 1 and self.fn is None and self.target is None:
            self.diagnostics["probabilities"] = self.rows(diagnose.probability_rows(outputs))
        acts = [self.grid(ref, a) for ref, a in zip(refs, acts)]
        grads = [self.grid(ref, g) for ref, g in zip(refs, grads)]
        hessian = self.grid(refs[0], hessian)
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

    def _differentiate(self, inputs: list | None, codes: tf.Tensor,
                       samples: tf.Tensor | None = None) -> tuple:
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
            scores, chosen = self.score(outputs, codes, samples=samples)
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
                scores, chosen = self.score(outputs, codes, samples=samples)
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

    @staticmethod
    def grid(ref: Any, x: tf.Tensor | None) -> tf.Tensor | None:
        """A token target's tensor ``[R, T, C]`` on its patch grid ``[R, h, w, C]``."""
        if x is None or ref is None or ref.layout is None:
            return x
        return ref.layout.to_grid(x)

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
        scores, _ = self.score(outputs, self._row_codes(rows), probability, self.sample_of(rows))
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
        grid = self.explainer.layer_refs[0].layout
        if grid is not None:  # the method changes the grid; the model reads tokens
            on_grid = transform
            transform = lambda raw: grid.from_grid(on_grid(grid.to_grid(raw)), raw)  # noqa: E731
        _, outputs = self.run(inputs, transform=transform, overrides=replay)
        return outputs

    def gradients_at(self, inputs: list, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        acts, _, _, _, grads, _ = self._differentiate(inputs, self._row_codes(rows),
                                                      self.sample_of(rows))
        ref = self.explainer.layer_refs[0]
        return self.grid(ref, tf.cast(acts[0], tf.float32)), self.grid(ref, grads[0])

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
        ref = self.explainer.layer_refs[0]
        layer = ref.layer
        if ref.kind != "output" or ref.within or ref.index is not None:
            return {}  # the split is defined for an op's (only) output
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
