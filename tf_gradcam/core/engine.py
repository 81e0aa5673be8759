"""The engine every method shares: forward to the layer, gradients, one compiled step per batch.

A method is a subclass of :class:`Explainer` that overrides one or two small hooks:

* :meth:`Explainer.channel_weights` -> ``[N, K]`` per-channel weights (alphas), e.g. Grad-CAM's
  spatial mean of the gradients;
* :meth:`Explainer.combine` -> ``[N, *S]`` the map; by default ``relu(sum_k w_k A_k)``;
* :meth:`Explainer.heatmap` -> ``[N, *input spatial]`` the map at the input's resolution, before
  scaling; by default the upsampled map (Guided Grad-CAM multiplies it with input gradients);
* :meth:`Explainer.fuse` -> ``[N, *input spatial]`` one map from several layers' maps, for a method
  that explains several layers at once (``layer=[...]``, Layer-CAM); not overridden: one layer.

A method that explains the input rather than a layer (guided backpropagation) sets
``uses_layer = False`` and overrides :meth:`Explainer.gradients_and_activations`.

Everything else (finding the layer, the logits under a softmax, the tape, batching, the
``tf.function``/XLA compilation, upsampling, scaling, input checks) lives here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import keras
import numpy as np
import tensorflow as tf

from tf_gradcam.core import checks, graph, layers, resize, targets as targets_lib
from tf_gradcam.explanation import Explanation

DEFAULT_BATCH_SIZE = 32
# Distinct callables kept compiled per explainer; older ones are dropped (pass the same callable
# object again to reuse its compiled step).
MAX_CALLABLE_STEPS = 8
_CALLABLE_LENGTH_MESSAGE = "tf_gradcam: the targets callable must return one score per sample"


@dataclass
class Context:
    """What a method's hooks see for one batch, inside the compiled step.

    Shapes: ``activations`` and ``gradients`` are ``[N, *S, K]`` float32 (``S`` the layer's
    1 to 3 spatial axes, ``K`` its channels); ``targets`` ``[N]`` int32 (-1 where a callable chose
    the score); ``scores`` ``[N]`` float32.
    """

    inputs: list
    activations: tf.Tensor
    gradients: tf.Tensor | None
    targets: tf.Tensor
    scores: tf.Tensor
    outputs: Any
    score_fn: Callable[[Any, tf.Tensor], tf.Tensor]
    target_arg: tf.Tensor
    extras: dict = field(default_factory=dict)

    @property
    def spatial_axes(self) -> list[int]:
        return list(range(1, self.activations.shape.rank - 1))


class Explainer:
    """Base of every CAM method. Subclasses override :meth:`channel_weights` and/or :meth:`combine`.

    Args:
        model: a built ``keras.Model`` (functional, ``Sequential``, or nesting other models).
            It is never changed.
        layer: a layer name (or ``"outer/inner"`` path), a layer object, or ``None`` for the last
            layer whose output has spatial axes (1D ``[N, T, C]``, 2D ``[N, H, W, C]``,
            3D ``[N, D, H, W, C]``), looking inside nested models. A method that overrides
            :meth:`fuse` (Layer-CAM) also takes a list of layers, explained in one pass and fused.
        score: ``"logits"`` explains the pre-softmax (pre-sigmoid) score even when the model ends
            in a softmax; ``"probabilities"`` explains the model's own output.
        jit_compile: compile the whole step with XLA.
        counterfactual: explain the negated score (the Grad-CAM paper's counterfactual maps:
            regions whose removal would raise the class's score). Gradient methods only.
    """

    #: The name ``tfg.explain(method=...)`` knows the method by.
    name: ClassVar[str] = "base"
    #: Other spellings ``tfg.explain(method=...)`` accepts (besides case, ``-``, ``_``, ``+``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Whether the step needs d score / d activations (Eigen-CAM and Score-CAM do not).
    uses_gradients: ClassVar[bool] = True
    #: Whether the method explains a layer. ``False`` (guided backpropagation): ``layer`` must be
    #: ``None``, ``layer_ref`` is ``None`` and the explained input is the first model input with
    #: 1 to 3 spatial axes and a channel axis (``[N, T, C]``, ``[N, H, W, C]``, ``[N, D, H, W, C]``).
    uses_layer: ClassVar[bool] = True

    def __init__(
        self,
        model: keras.Model,
        layer: layers.LayerLike = None,
        *,
        score: str = "logits",
        jit_compile: bool = False,
        counterfactual: bool = False,
    ) -> None:
        if score not in targets_lib.SCORES:
            raise ValueError(f"score must be one of {targets_lib.SCORES}, got {score!r}.")
        if counterfactual and not self.uses_gradients:
            raise ValueError(f"{type(self).__name__} uses no gradients: counterfactual is not defined.")
        self.model = model
        if self.uses_layer:
            self.layer_refs: tuple[layers.LayerRef, ...] = self._resolve_layers(model, layer)
            self.layer_ref: layers.LayerRef | None = self.layer_refs[0]
        else:
            if layer is not None:
                raise ValueError(
                    f"{type(self).__name__} explains the input, not a layer; got layer={layer!r}. "
                    "Leave layer=None."
                )
            layers.check_built(model)
            self.layer_refs = ()
            self.layer_ref = None
        _refuse_channels_first(model)
        self.score = score
        self.jit_compile = bool(jit_compile)
        self.counterfactual = bool(counterfactual)

        self._score_overrides = targets_lib.logit_overrides(model) if score == "logits" else {}
        self._input_specs = [
            tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype, name=f"input_{i}")
            for i, t in enumerate(graph.graph_of(model).inputs)
        ]
        self._input_names = graph.input_names(model)
        self.num_classes = targets_lib.output_classes(model)
        self._spatial_input = self._find_spatial_input()
        self._steps: dict[Any, tuple] = {}
        self._retired_traces = 0

    # ----------------------------------------------------------------- method hooks
    def channel_weights(self, ctx: Context) -> tf.Tensor | None:
        """``[N, K]`` float32 weights of the channels, or ``None`` for a method without them."""
        raise NotImplementedError

    def combine(self, ctx: Context, weights: tf.Tensor | None) -> tf.Tensor:
        """``[N, *S]`` float32 map: ``relu(sum_k w_k A_k)``."""
        cam = tf.einsum("n...k,nk->n...", ctx.activations, weights)
        return tf.nn.relu(cam)

    def heatmap(self, ctx: Context, raw: tf.Tensor) -> tf.Tensor:
        """``[N, *input spatial]`` non-negative map before scaling: ``raw`` upsampled to the input."""
        size = tf.shape(ctx.inputs[self._spatial_input])[1: 1 + raw.shape.rank - 1]
        return resize.upsample(raw, size)

    def fuse(self, maps: list[tf.Tensor]) -> tf.Tensor:
        """``[N, *input spatial]`` non-negative map from several layers' maps (``layer=[...]``),
        each already :meth:`heatmap`-upsampled to the input. Overriding it lets a method take a
        list of layers; the base explains one layer only."""
        raise NotImplementedError

    # ----------------------------------------------------------------- forward machinery
    @property
    def layer(self) -> keras.layers.Layer | None:
        return self.layer_ref.layer if self.layer_ref is not None else None

    @property
    def layer_names(self) -> str:
        """The explained layers' paths, comma-separated ("" for a method without a layer)."""
        return ", ".join(ref.path for ref in self.layer_refs)

    @property
    def input_specs(self) -> list[tf.TensorSpec]:
        """One ``tf.TensorSpec`` per model input, batch axis unknown."""
        return list(self._input_specs)

    @property
    def input_names(self) -> list[str]:
        """The model inputs' names (dict keys for a dict-input model), in ``model.inputs`` order."""
        return list(self._input_names)

    @property
    def spatial_input(self) -> int:
        """Index of the input the maps are drawn over (and Score-CAM masks)."""
        return self._spatial_input

    def prepare_inputs(self, inputs: Any) -> list[np.ndarray]:
        """``inputs`` checked (shape, NaN/inf) and converted into one array per model input."""
        return self._prepare_inputs(inputs)

    def forward(
        self,
        inputs: list,
        on_activation: Callable[[tf.Tensor], tf.Tensor] | None = None,
        overrides: dict | None = None,
    ) -> tuple[tf.Tensor, Any]:
        """Run the model once; return the target layer's activations and the (scored) outputs.

        ``on_activation`` sees the layer's output and returns what flows on (the same tensor
        watched by a tape, or a replaced one: Ablation-CAM zeroes channels this way).
        ``overrides`` replace other layers' calls (guided ReLUs); an override of the target layer
        itself still runs, inside the capture. Without a layer (``uses_layer = False``) the
        activations returned are ``None``.
        """
        all_overrides = {**self._score_overrides, **(overrides or {})}
        captured = []
        descend = graph.models_containing(self.model, set(all_overrides) | {id(self.layer)})
        if self.layer_ref is not None:
            inner = all_overrides.get(id(self.layer))
            if inner is None and id(self.layer) in descend:
                # The target is a nested model holding overridden layers (guided ReLUs): run its
                # inside with them rather than as one plain call.
                def inner(call, *args, _model=self.layer, **kwargs):
                    return graph.run(_model, args[0] if len(args) == 1 else list(args),
                                     all_overrides, descend=descend)

            def capture(call, *args, **kwargs):
                out = inner(call, *args, **kwargs) if inner is not None else call(*args, **kwargs)
                if on_activation is not None:
                    out = on_activation(out)
                captured.append(out)
                return out

            all_overrides[id(self.layer)] = capture
        outputs = graph.run(self.model, list(inputs), all_overrides, descend=descend)
        if self.layer_ref is None:
            return None, outputs
        if len(captured) != 1:
            raise ValueError(
                f"Layer {self.layer_ref.path!r} is called {len(captured)} times in the model (a "
                "shared layer or backbone, as in a siamese network); pick a layer that runs once "
                "per forward pass, or explain the shared model on its own: tfg.GradCAM(backbone)."
            )
        return captured[0], outputs

    def _select(self, outputs: Any, score_fn, target_arg: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``([N] scores, [N] int32 targets)`` for class indices (-1: top) or a callable."""
        if score_fn is not None:
            scores = tf.convert_to_tensor(score_fn(outputs))
            if scores.shape.rank != 1:
                raise ValueError(
                    f"The targets callable must return one score per sample, shape [N]; it "
                    f"returned shape {scores.shape}. Reduce it, e.g. with tf.reduce_sum(..., axis=...)."
                )
            if not scores.dtype.is_floating:
                raise ValueError(
                    f"The targets callable returned {scores.dtype.name} values; it must return a "
                    "differentiable float score per sample (e.g. a logit), not a class index."
                )
            batch = tf.shape(tf.nest.flatten(outputs)[0])[0]
            check = tf.debugging.assert_equal(
                tf.shape(scores)[0], batch, message=_CALLABLE_LENGTH_MESSAGE)
            with tf.control_dependencies([check]):
                scores = tf.identity(scores)
            return scores, tf.fill(tf.shape(scores), tf.constant(-1, tf.int32))
        logits = outputs
        top = tf.argmax(logits, axis=-1, output_type=tf.int32)
        chosen = tf.where(target_arg < 0, top, target_arg)
        return tf.gather(logits, chosen, axis=1, batch_dims=1), chosen

    def _select_like(self, outputs, ctx: Context, rows: tf.Tensor) -> tf.Tensor:
        """``[M]`` scores of ``ctx``'s targets in ``outputs`` of ``M`` rows (perturbed copies);
        ``rows`` ``[M]``: the sample of ``ctx`` each row comes from."""
        if ctx.score_fn is not None:
            return tf.cast(ctx.score_fn(outputs), tf.float32)
        chosen = tf.gather(ctx.targets, rows)
        return tf.cast(tf.gather(outputs, chosen, axis=1, batch_dims=1), tf.float32)

    def gradients_and_activations(self, inputs: list, score_fn, target_arg) -> Context:
        """Forward pass, scores and (for gradient methods) d score / d activations."""
        return self.layer_contexts(inputs, score_fn, target_arg)[0]

    def layer_contexts(self, inputs: list, score_fn, target_arg) -> list[Context]:
        """One :class:`Context` per layer of ``layer_refs`` (several when fusing layers), all
        from one forward pass and, for gradient methods, one backward pass."""
        others = self.layer_refs[1:]
        stores: list[list] = [[] for _ in others]

        def run(watch):
            captures = {id(r.layer): _capturing(s, watch) for r, s in zip(others, stores)}
            acts, outputs = self.forward(inputs, on_activation=watch, overrides=captures)
            for ref, store in zip(others, stores):
                if len(store) != 1:
                    raise ValueError(
                        f"Layer {ref.path!r} runs {len(store)} times in one forward pass; pick "
                        "layers that run once each."
                    )
            return [acts] + [store[0] for store in stores], outputs

        if not self.uses_gradients:
            acts, outputs = run(None)
            scores, chosen = self._select(outputs, score_fn, target_arg)
            grads = [None] * len(acts)
        else:
            # Watching only the activations keeps the tape (and so the backward pass) to the
            # part of the network after the layer, and works for frozen layers too.
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                acts, outputs = run(_watched(tape))
                scores, chosen = self._select(outputs, score_fn, target_arg)
                objective = -scores if self.counterfactual else scores
            grads = tape.gradient(objective, acts)
            for ref, grad in zip(self.layer_refs, grads):
                if grad is None:
                    raise ValueError(
                        f"The explained score does not depend on layer {ref.path!r} (no "
                        "gradient path); choose a layer that feeds the output you explain."
                    )
            grads = [tf.cast(grad, tf.float32) for grad in grads]
        return [
            Context(
                inputs=list(inputs),
                activations=tf.cast(act, tf.float32),
                gradients=grad,
                targets=chosen,
                scores=tf.cast(scores, tf.float32),
                outputs=outputs,
                score_fn=score_fn,
                target_arg=target_arg,
            )
            for act, grad in zip(acts, grads)
        ]

    def compute(self, ctx: Context) -> tf.Tensor:
        """``[N, *S]`` raw map of the method (after its ReLU, unscaled). Stores the weights."""
        weights = self.channel_weights(ctx)
        if weights is not None:
            ctx.extras["weights"] = weights
        return self.combine(ctx, weights)

    def _step_fn(self, score_fn):
        def step(inputs, target_arg):
            # Keras layers open name scopes named after themselves; TensorFlow refuses a root
            # scope that starts with "_", so give them a parent (model.predict does the same).
            with tf.name_scope("tf_gradcam"):
                return body(inputs, target_arg)

        def body(inputs, target_arg):
            if len(self.layer_refs) > 1:
                # Fusion: each layer's map upsampled to the input, then one map at the input's
                # resolution (per-layer extras such as weights differ in size: not returned).
                ctxs = self.layer_contexts(inputs, score_fn, target_arg)
                ctx, extras = ctxs[0], {}
                raw = tf.cast(self.fuse([self.heatmap(c, self.compute(c)) for c in ctxs]),
                              tf.float32)
                full = raw
            else:
                ctx = self.gradients_and_activations(inputs, score_fn, target_arg)
                raw = tf.cast(self.compute(ctx), tf.float32)
                full, extras = self.heatmap(ctx, raw), ctx.extras
            heat = resize.scale_by_max(tf.cast(full, tf.float32))
            return {
                "heatmaps": heat,
                "raw": raw,
                "targets": ctx.targets,
                "scores": ctx.scores,
                **{k: tf.cast(v, tf.float32) for k, v in extras.items()},
            }

        return tf.function(
            step,
            input_signature=[self._input_specs, tf.TensorSpec([None], tf.int32, name="targets")],
            jit_compile=self.jit_compile,
            reduce_retracing=True,
            # The step is plain Python at trace time: no tensor-dependent control flow to convert.
            autograph=False,
        )

    @property
    def trace_count(self) -> int:
        """How many times the compiled steps have been traced (for tests and diagnostics)."""
        live = sum(fn.experimental_get_tracing_count() for fn, _ in self._steps.values())
        return live + self._retired_traces

    # ----------------------------------------------------------------- the call
    def __call__(
        self,
        inputs: Any,
        targets: targets_lib.Targets = None,
        *,
        batch_size: int | None = None,
    ) -> Explanation:
        """Explain ``inputs``.

        Args:
            inputs: ``[N, *input_shape]`` array (a list or dict of arrays for several inputs), or
                a ``tf.data.Dataset`` yielding batches (``x`` or ``(x, y, ...)``), read whole
                into memory (``tfg.explain_dataset`` streams large ones).
            targets: ``None`` (each sample's top class), an int (one class for all), ``N`` ints,
                or a callable ``f(outputs) -> [N]`` scores; ``outputs`` are the logits (under
                ``score="logits"``) or the model's outputs.
            batch_size: samples per compiled step (default 32).

        Returns:
            An :class:`Explanation`: ``heatmaps [N, *input spatial] float32 in [0, 1]``,
            ``raw [N, *layer spatial] float32 >= 0``, ``targets [N] int64``, ``scores [N] float32``.
        """
        xs = self._prepare_inputs(inputs)
        n = xs[0].shape[0]
        chosen = targets_lib.normalize(targets, n, self.num_classes)
        score_fn = chosen if callable(chosen) else None
        step = self.compiled_step(score_fn)
        bs = _check_batch_size(batch_size)
        parts = []
        for start in range(0, n, bs):
            chunk = [tf.convert_to_tensor(x[start: start + bs]) for x in xs]
            arg = chosen[start: start + bs] if score_fn is None else np.zeros(
                len(chunk[0]), np.int32)
            try:
                out = step(chunk, tf.convert_to_tensor(arg, tf.int32))
            except tf.errors.InvalidArgumentError as err:
                if _CALLABLE_LENGTH_MESSAGE not in str(err):
                    raise
                raise ValueError(
                    f"The targets callable must return one score per sample ([{len(chunk[0])}] "
                    "for this batch), not a reduced or differently sized tensor: e.g. "
                    "lambda logits: logits[:, 3], not tf.reduce_sum(logits[:, 3])."
                ) from None
            parts.append({k: v.numpy() for k, v in out.items()})
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return Explanation.from_arrays(merged, method=self.name, layer=self.layer_names)

    def explain_batch(self, inputs: list, target_arg: tf.Tensor, score_fn=None) -> dict:
        """One compiled step on tensors already batched and checked: for callbacks and
        distributed loops that manage their own batching. Returns tensors.

        ``inputs``: one ``[B, ...]`` tensor per model input, ``B >= 1`` (TensorFlow's
        convolutions refuse an empty batch); ``target_arg``: ``[B] int32`` classes, -1 for the
        top class (ignored when ``score_fn`` is given)."""
        return self.compiled_step(score_fn)(inputs, target_arg)

    def compiled_step(self, score_fn=None) -> Callable:
        """The ``tf.function`` that explains one batch: ``step(inputs, target_arg) -> dict``.
        Built (not yet traced) on first request and reused; one per ``score_fn``."""
        # One compiled step for all class-index targets; one per callable (its Python code is
        # part of the graph). The batch axis is unknown in the signature: no retrace per size.
        key = None if score_fn is None else id(score_fn)
        if key not in self._steps:
            callables = [k for k in self._steps if k is not None]
            if key is not None and len(callables) >= MAX_CALLABLE_STEPS:
                self._retired_traces += self._steps.pop(callables[0])[0].experimental_get_tracing_count()
            self._steps[key] = (self._step_fn(score_fn), score_fn)
        return self._steps[key][0]

    # ----------------------------------------------------------------- input checks
    def _resolve_layers(self, model: keras.Model, layer: Any) -> tuple[layers.LayerRef, ...]:
        """``layer`` (or, for a method that fuses layers, a list of them) as layer references."""
        if not isinstance(layer, (list, tuple)):
            return (layers.resolve_layer(model, layer),)
        refs = tuple(layers.resolve_layer(model, lyr) for lyr in layer)
        name = type(self).__name__
        if not refs:
            raise ValueError(f"layer is an empty {type(layer).__name__}: name at least one layer.")
        if len(refs) > 1 and type(self).fuse is Explainer.fuse:
            raise ValueError(
                f"{name} explains one layer; got {len(refs)}: {[r.path for r in refs]}. Pass one "
                "(tfg.LayerCAM fuses several layers)."
            )
        if len({id(r.layer) for r in refs}) < len(refs):
            raise ValueError(f"layer lists a layer twice: {[r.path for r in refs]}.")
        if len({r.spatial_rank for r in refs}) > 1:
            raise ValueError(
                f"Fused layers need the same number of spatial axes; got "
                f"{ {r.path: r.shape for r in refs} }."
            )
        for outer in refs:
            for inner in refs:
                if inner is not outer and graph.is_graph_model(outer.layer) and graph.contains(
                        outer.layer, inner.layer):
                    raise ValueError(
                        f"Layer {inner.path!r} lies inside the fused model {outer.path!r}: list "
                        f"that model's last layer instead of {outer.path!r}."
                    )
        return refs

    def _find_spatial_input(self) -> int:
        if self.layer_ref is None:
            for i, spec in enumerate(self._input_specs):
                if spec.shape.rank in layers.SPATIAL_RANKS:
                    return i
            raise ValueError(
                f"{type(self).__name__} draws its map over an input with spatial axes "
                "([N, T, C], [N, H, W, C] or [N, D, H, W, C]); model "
                f"{self.model.name!r} has inputs of shapes {[tuple(s.shape) for s in self._input_specs]}."
            )
        # The map is drawn over an input the layer actually depends on, with the same spatial
        # axes plus channels ([N, H, W, C] for a 2D layer), or token ids ([N, T]) under a 1D one.
        s = self.layer_ref.spatial_rank
        feeding = graph.input_ancestors(self.model, self.layer) or range(len(self._input_specs))
        for i in feeding:
            if self._input_specs[i].shape.rank == s + 2:
                return i
        for i in feeding:
            spec = self._input_specs[i]
            if spec.shape.rank == s + 1 and (spec.dtype.is_integer or s == 1):
                return i
        raise ValueError(
            f"Layer {self.layer_ref.path!r} has {s} spatial axes, but no model input it depends "
            f"on has them (inputs: {[tuple(sp.shape) for sp in self._input_specs]}); there is "
            "no image to draw its map over. Choose a layer computed from the spatial input."
        )

    def _prepare_inputs(self, inputs: Any) -> list[np.ndarray]:
        """Validate and convert ``inputs`` into one array per model input, cast to its dtype."""
        if isinstance(inputs, tf.data.Dataset):
            inputs = _collect_dataset(inputs, len(self._input_specs), self._input_specs)
        if isinstance(inputs, dict):
            missing = [k for k in self._input_names if k not in inputs]
            if missing:
                raise ValueError(f"inputs dict lacks the model inputs {missing}; it has {list(inputs)}.")
            inputs = [inputs[k] for k in self._input_names]
        if len(self._input_specs) == 1 and not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if not isinstance(inputs, (list, tuple)) or len(inputs) != len(self._input_specs):
            got = len(inputs) if isinstance(inputs, (list, tuple)) else 1
            raise ValueError(
                f"Model {self.model.name!r} takes {len(self._input_specs)} inputs "
                f"({', '.join(self._input_names)}); got {got}. Pass a list with one array per input."
            )
        arrays = []
        for spec, name, x in zip(self._input_specs, self._input_names, inputs):
            x = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
            expected = tuple(spec.shape)
            shape_ok = x.ndim == len(expected) and all(
                e is None or e == g for e, g in zip(expected[1:], x.shape[1:]))
            if not shape_ok:
                hint = ""
                if x.ndim == len(expected) - 1 and all(
                        e is None or e == g for e, g in zip(expected[1:], x.shape)):
                    hint = " It looks like one sample: add the batch axis, e.g. x[None]."
                elif x.ndim == len(expected) - 1:
                    hint = " If the channel axis is missing, add it, e.g. x[..., None]."
                raise ValueError(
                    f"Input {name!r} has shape {x.shape}, but the model expects "
                    f"{expected} (batch first; None is any size).{hint}"
                )
            if x.shape[0] == 0:
                raise ValueError("inputs hold no samples: pass at least one.")
            if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.complexfloating):
                finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
                if not finite.all():
                    bad = np.flatnonzero(~finite)
                    raise ValueError(
                        f"Input {name!r} contains NaN or infinity in sample(s) {bad[:10].tolist()}; "
                        "clean or drop them before explaining (a NaN input gives a NaN map)."
                    )
            arrays.append(x.astype(spec.dtype.as_numpy_dtype, copy=False))
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(f"All inputs need the same number of samples, got {[len(a) for a in arrays]}.")
        return arrays


def _refuse_channels_first(model: keras.Model) -> None:
    # Maps, upsampling and masks all read the spatial axes as [N, *S, C]; a channels_first
    # layer would be explained along the wrong axes without any error.
    for path, layer, _ in graph.walk(model):
        if getattr(layer, "data_format", None) == "channels_first":
            raise ValueError(
                f"Layer {path!r} uses data_format='channels_first'; tf_gradcam reads activations "
                "as channels last ([N, *spatial, C]). Rebuild the model channels_last (the "
                "TensorFlow default; weights transfer unchanged for Conv layers)."
            )


def _watched(tape: tf.GradientTape) -> Callable[[tf.Tensor], tf.Tensor]:
    def watch(x):
        tape.watch(x)
        return x

    return watch


def _capturing(store: list, watch: Callable[[tf.Tensor], tf.Tensor] | None) -> Callable:
    """An override that records (and, with ``watch``, watches) a layer's output."""

    def capture(call, *args, **kwargs):
        out = call(*args, **kwargs)
        if watch is not None:
            out = watch(out)
        store.append(out)
        return out

    return capture


def _check_batch_size(batch_size: int | None) -> int:
    return DEFAULT_BATCH_SIZE if batch_size is None else checks.positive_int(batch_size, "batch_size")


def _collect_dataset(dataset: tf.data.Dataset, n_inputs: int, specs: list) -> Any:
    """Concatenate a dataset's input batches; ``(x, y[, w])`` elements give ``x`` (Keras' rule)."""
    batches = []
    for element in dataset:
        batches.append(dataset_inputs(element, n_inputs))
        if len(batches) == 1 and not isinstance(batches[0], (dict, list, tuple)) and (
                len(specs[0].shape) == np.ndim(batches[0]) + 1):
            raise ValueError(
                f"The dataset yields single samples of shape {tuple(np.shape(batches[0]))}; "
                "batch it first: dataset.batch(32). (For large datasets, "
                "tfg.explain_dataset streams them with bounded memory.)"
            )
    if not batches:
        raise ValueError("The dataset is empty: nothing to explain.")
    if isinstance(batches[0], dict):
        return {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
    if isinstance(batches[0], (list, tuple)):
        return [np.concatenate([np.asarray(b[i]) for b in batches]) for i in range(len(batches[0]))]
    return np.concatenate([np.asarray(b) for b in batches])


def dataset_inputs(element: Any, n_inputs: int) -> Any:
    """The model inputs in one dataset element: Keras' ``(x, y, sample_weight)`` convention,
    except a bare tuple of ``n_inputs`` tensors for a multi-input model."""
    if isinstance(element, tuple):
        if n_inputs > 1 and len(element) == n_inputs and all(
                tf.is_tensor(e) or isinstance(e, np.ndarray) for e in element):
            return list(element)
        return element[0]
    return element
