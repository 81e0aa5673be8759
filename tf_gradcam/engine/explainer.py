"""The base of every method: :class:`Explainer`, its hooks, and the registry of methods.

A method is one small subclass in ``tf_gradcam/methods/`` that sets ``name`` (it then registers
itself: ``tfg.<ClassName>``, ``tfg.METHODS[name]``, ``tfg.explain(method=name)``) and overrides
one or two hooks, each called inside the compiled step with a
:class:`~tf_gradcam.engine.context.Context` of ``M`` rows:

* :meth:`Explainer.channel_weights` -> ``[M, K]`` per-channel weights (alphas), e.g. Grad-CAM's
  spatial mean of the gradients (``None`` by default: no weights);
* :meth:`Explainer.weighted_activations` -> ``[M, *S, K]``, by default ``w_k A_k``;
* :meth:`Explainer.combine` -> ``[M, *S]`` the map; by default the ReLU of the weighted
  activations summed over channels;
* :meth:`Explainer.heatmap` -> ``[M, *input spatial]`` the map at the input's resolution, before
  scaling; by default the upsampled map (Guided Grad-CAM multiplies it with input gradients);
* :meth:`Explainer.fuse` -> one map from several layers' maps (``layer=[...]``, Layer-CAM);
* :meth:`Explainer.overrides` -> extra op overrides for the main pass (guided ReLUs).

Everything else (choosing the tensor and the score, the tape, batching, compilation, upsampling,
scaling, input checks) is the engine's, in the modules next to this one.
"""

from __future__ import annotations

import inspect
import warnings
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, TypedDict

import keras
import numpy as np
import tensorflow as tf

from tf_gradcam.choose import scores as scores_lib
from tf_gradcam.choose import targets as targets_lib
from tf_gradcam.choose import explained, tensors
from tf_gradcam.choose.tokens import TokensLike
from tf_gradcam.engine import diagnose, graph, pca, pipeline, resize, smooth
from tf_gradcam.engine.context import Context
from tf_gradcam.engine import inputs as inputs_lib
from tf_gradcam.engine.inputs import InputChecker
from tf_gradcam.engine.smooth import Augmentations
from tf_gradcam.engine.step import StepCache
from tf_gradcam.explanation import Explanation

if TYPE_CHECKING:
    pass

#: Every registered method: ``name -> class`` (``tfg.METHODS``). A method registers itself
#: when its class is defined with a ``name``.
REGISTRY: dict[str, type[Explainer]] = {}


class ExplainerOptions(TypedDict, total=False):
    """The keyword arguments every method takes (see :class:`Explainer`)."""

    score: str
    jit_compile: bool
    counterfactual: bool
    eigen_smooth: bool
    aug_smooth: bool | Augmentations
    tokens: TokensLike


def _key(name: str) -> str:
    return str(name).lower().replace("-", "").replace("_", "").replace("+", "plus")


def get_method(method: str) -> type[Explainer]:
    """The explainer class for a method name or one of its ``aliases`` (case and
    ``-``/``_``/``+`` spellings tolerated: ``"Grad-CAM++"``, ``"gradcam_pp"``)."""
    import tf_gradcam.methods  # noqa: F401  (every method registers itself on import)

    lookup = {_key(alias): cls for cls in REGISTRY.values() for alias in (cls.name, *cls.aliases)}
    if _key(method) not in lookup:
        raise ValueError(f"Unknown method {method!r}; choose one of {sorted(REGISTRY)}.")
    return lookup[_key(method)]


class Explainer:
    """Base of every CAM method. Subclasses override :meth:`channel_weights` and/or :meth:`combine`.

    Args:
        model: a built ``keras.Model`` (functional, ``Sequential``, or nesting other models).
            It is never changed.
        layer: the tensor to explain (``[N, T, C]``, ``[N, H, W, C]`` or ``[N, D, H, W, C]``,
            or a token sequence inside an image model): a layer or op name, an
            ``"outer/inner"`` path (into nested models and composite layers), ``"name@i"`` for
            one call of a shared layer, ``"name[j]"`` for one output, ``tfg.input_of(name)``
            for what a layer reads, a layer object, or ``None`` for the automatic choice (the
            input of the global pooling / flatten / token read-out, or what feeds a segmenter's
            per-pixel classifier; see :mod:`tf_gradcam.choose.auto`). A method that overrides
            :meth:`fuse` (Layer-CAM) also takes a list, explained in one pass and fused.
        score: ``"logits"`` explains the pre-softmax (pre-sigmoid) score even when the model ends
            in a softmax; ``"probabilities"`` explains the model's own output.
        jit_compile: compile the whole step with XLA.
        counterfactual: explain the negated score (the Grad-CAM paper's counterfactual maps:
            regions whose removal would raise the class's score). Gradient methods only.
        eigen_smooth: the map is the first principal component of the method's weighted
            activations (:meth:`weighted_activations`) instead of their sum over channels, as
            pytorch-grad-cam's option of that name (its sign fixed to agree with the plain map;
            rectified). Removes noise that no single direction of the channels explains.
        aug_smooth: test-time augmentation (pytorch-grad-cam's option of that name): each
            input explained as flipped and intensity-scaled copies (``True``: flip x factors
            0.9 / 1.0 / 1.1; or ``tfg.Augmentations(flips=..., factors=...)``), all in the
            one compiled step, each map mapped back, scaled and averaged; the class is chosen
            on the unaugmented copy, whose scores, targets and weights are reported.
        tokens: how a ``[N, T, C]`` token target maps onto the image, when it cannot be
            inferred: ``tfg.Tokens(prefix=1, grid=(14, 14))``, or a callable
            ``[N, T, C] -> [N, h, w, C]`` (pytorch-grad-cam's ``reshape_transform``).
    """

    #: The name ``tfg.explain(method=...)`` knows the method by; setting it registers the class.
    name: ClassVar[str] = "base"
    #: Other spellings ``tfg.explain(method=...)`` accepts (besides case, ``-``, ``_``, ``+``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Whether the step needs d score / d activations (Eigen-CAM and Score-CAM do not).
    uses_gradients: ClassVar[bool] = True
    #: Whether the method explains a layer. ``False`` (guided backpropagation): ``layer`` must be
    #: ``None`` and the explained tensor is the first model input with spatial axes.
    uses_layer: ClassVar[bool] = True
    #: Whether the method calls ``ctx.rescore_activations``: the main pass then records every
    #: tensor a change of the target cannot reach, so rescoring runs only the layers after it.
    rescores_activations: ClassVar[bool] = False
    #: Whether the step also computes ``ctx.hessian_activations`` (``d^2 S / dA^2 . A``).
    uses_hessian: ClassVar[bool] = False
    #: Whether ``eigen_smooth`` means something for the method (not for Eigen-CAM itself).
    eigen_smooth_defined: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            known = REGISTRY.get(cls.name)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise TypeError(f"Method name {cls.name!r} is taken by {known.__qualname__}.")
            REGISTRY[cls.name] = cls

    def __init__(
        self,
        model: keras.Model,
        layer: tensors.LayerSpec = None,
        *,
        score: str = "logits",
        jit_compile: bool = False,
        counterfactual: bool = False,
        eigen_smooth: bool = False,
        aug_smooth: bool | Augmentations = False,
        tokens: TokensLike = None,
    ) -> None:
        if eigen_smooth and not self.eigen_smooth_defined:
            raise ValueError(f"{type(self).__name__} has no weighted activations to smooth: "
                             "eigen_smooth is not defined for it.")
        if score not in scores_lib.SCORES:
            raise ValueError(f"score must be one of {scores_lib.SCORES}, got {score!r}.")
        if counterfactual and not self.uses_gradients:
            raise ValueError(
                f"{type(self).__name__} uses no gradients: counterfactual is not defined.")
        self.model = model
        tensors.check_built(model)
        if self.uses_layer:
            self.layer_refs: tuple[tensors.TensorRef, ...] = explained.targets(
                model, layer, tokens=tokens, fuses=type(self).fuse is not Explainer.fuse,
                method=type(self).__name__)
        elif layer is not None:
            raise ValueError(
                f"{type(self).__name__} explains the input, not a layer; got layer={layer!r}. "
                "Leave layer=None."
            )
        else:
            self.layer_refs = ()
        explained.refuse_channels_first(model)
        self.score = score
        self.jit_compile = bool(jit_compile)
        self.counterfactual = bool(counterfactual)
        self.eigen_smooth = bool(eigen_smooth)
        self.aug_smooth = smooth.option(aug_smooth)
        self.head_info = scores_lib.head_of(model)
        self.score_overrides = scores_lib.logit_overrides(model) if score == "logits" else {}
        self._input_specs = [
            tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype, name=f"input_{i}")
            for i, t in enumerate(graph.graph_of(model).inputs)
        ]
        self.checker = InputChecker(self._input_specs, graph.input_names(model), model.name,
                                    inputs_lib.expectations(model))
        self._spatial_input = explained.spatial_input(model, self.layer_ref, self._input_specs,
                                                      type(self).__name__)
        spatial = self._input_specs[self._spatial_input]
        if self.aug_smooth is not None and not spatial.dtype.is_floating:
            raise ValueError(
                f"aug_smooth flips and scales input {self.input_names[self._spatial_input]!r}, "
                "which holds integers (token ids?): it is defined for float inputs.")
        self._steps = StepCache()

    @classmethod
    def option_names(cls) -> list[str]:
        """The keyword arguments this method's constructor takes (its own and the shared ones)."""
        own = [p.name for p in inspect.signature(cls.__init__).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY]
        return sorted(set(own) | set(ExplainerOptions.__annotations__))

    # ----------------------------------------------------------------- method hooks
    def channel_weights(self, ctx: Context) -> tf.Tensor | None:
        """``[M, K]`` float32 weights of the channels, or ``None`` for a method without them."""
        return None

    def combine(self, ctx: Context, weights: tf.Tensor | None) -> tf.Tensor:
        """``[M, *S]`` float32 map: ``relu(sum_k w_k A_k)``, the weighted activations summed
        over channels."""
        return tf.nn.relu(tf.reduce_sum(self.weighted_activations(ctx, weights), axis=-1))

    def heatmap(self, ctx: Context, raw: tf.Tensor) -> tf.Tensor:
        """``[M, *input spatial]`` non-negative map before scaling: ``raw`` upsampled."""
        size = tf.shape(ctx.inputs[self._spatial_input])[1: 1 + raw.shape.rank - 1]
        return resize.upsample(raw, size)

    def fuse(self, maps: list[tf.Tensor]) -> tf.Tensor:
        """``[M, *input spatial]`` non-negative map from several layers' maps (``layer=[...]``),
        each already :meth:`heatmap`-upsampled to the input. Overriding it lets a method take a
        list of layers; the base explains one layer only."""
        raise NotImplementedError

    def weighted_activations(self, ctx: Context, weights: tf.Tensor | None) -> tf.Tensor:
        """``[M, *S, K]``: what :meth:`combine` sums over channels (and ``eigen_smooth``
        decomposes); by default the activations times the channel weights. Methods whose
        weights vary over space (HiResCAM, Layer-CAM) return their elementwise products."""
        if weights is None:
            raise NotImplementedError(
                f"{type(self).__name__} must override channel_weights or combine (or "
                "weighted_activations, for weights that vary over space).")
        shape = tf.concat([tf.shape(weights)[:1], tf.ones([ctx.activations.shape.rank - 2],
                                                          tf.int32), tf.shape(weights)[1:]], 0)
        return ctx.activations * tf.reshape(weights, shape)

    def class_scores(self, logits: tf.Tensor, codes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``([R, k] scores, [R, k] int32 classes)`` explained for class codes ``[R, k]`` of
        ``logits [R, C]`` (class indices, or ``-j`` for the j-th highest class). A method that
        explains another score of the classes (Finer-CAM's difference to the nearest classes)
        overrides it; rescoring (Score-CAM, Ablation-CAM) uses it too."""
        return targets_lib.select_classes(logits, codes)

    def overrides(self) -> dict:
        """Extra ``id(op) -> fn(call, *args, **kwargs)`` overrides for the batch's forward pass."""
        return {}

    def check_plan(self, plan: targets_lib.Plan) -> None:
        """Refuse targets the method cannot explain (before anything runs)."""

    def compute(self, ctx: Context) -> tf.Tensor:
        """``[M, *S]`` raw map of the method (after its ReLU, unscaled). Stores the weights."""
        weights = self.channel_weights(ctx)
        if weights is not None:
            ctx.extras["weights"] = weights
        cam = self.combine(ctx, weights)
        if self.eigen_smooth:
            return tf.nn.relu(pca.first_component(self.weighted_activations(ctx, weights), cam))
        return cam

    # ----------------------------------------------------------------- description
    @property
    def layer_ref(self) -> tensors.TensorRef | None:
        return self.layer_refs[0] if self.layer_refs else None

    @property
    def layer(self) -> Any:
        return self.layer_ref.layer if self.layer_ref is not None else None

    @property
    def layer_paths(self) -> tuple[str, ...]:
        """The explained tensors' paths, one per target (``()`` for a method without a layer)."""
        return tuple(ref.path for ref in self.layer_refs)

    @property
    def layer_names(self) -> str:
        """The explained layers' paths, comma-separated ("" for a method without a layer)."""
        return ", ".join(self.layer_paths)

    @property
    def num_classes(self) -> int | None:
        return self.head_info.num_classes

    @property
    def input_specs(self) -> list[tf.TensorSpec]:
        """One ``tf.TensorSpec`` per model input, batch axis unknown."""
        return list(self._input_specs)

    @property
    def input_names(self) -> list[str]:
        """The model inputs' names (dict keys for a dict-input model), in ``model.inputs`` order."""
        return list(self.checker.names)

    @property
    def spatial_input(self) -> int:
        """Index of the input the maps are drawn over (and Score-CAM masks)."""
        return self._spatial_input

    @property
    def trace_count(self) -> int:
        """How many times the compiled steps have been traced (for tests and diagnostics)."""
        return self._steps.trace_count

    # ----------------------------------------------------------------- running
    def prepare_inputs(self, inputs: Any) -> list[np.ndarray]:
        """``inputs`` checked (shape, NaN/inf, dtype) and converted into one array per input."""
        if isinstance(inputs, tf.data.Dataset):
            return pipeline.collect(self, inputs)
        return self.checker.arrays(inputs)

    def run(self, inputs: Any, targets: targets_lib.Targets = None, *, top_k: int | None = None,
            batch_size: int | None = None, strategy: Any = None
            ) -> Iterator[dict[str, np.ndarray]]:
        """Explain ``inputs`` batch by batch, yielding each batch's arrays (the fields of an
        :class:`Explanation`; see :func:`tf_gradcam.engine.pipeline.run`)."""
        return pipeline.run(self, inputs, targets, top_k=top_k, batch_size=batch_size,
                            strategy=strategy)

    def __call__(
        self,
        inputs: Any,
        targets: targets_lib.Targets = None,
        *,
        top_k: int | None = None,
        batch_size: int | None = None,
    ) -> Explanation:
        """Explain ``inputs``.

        Args:
            inputs: ``[N, *input_shape]`` array (a list or dict of arrays for several inputs), or
                a ``tf.data.Dataset`` yielding batches (``x`` or ``(x, y, ...)``), read whole
                into memory (``tfg.explain_dataset`` streams large ones).
            targets: ``None`` (each sample's top class), an int (one class for all), ``N`` ints,
                an ``[N, k]`` int array (``k`` classes per sample), or a callable
                ``f(outputs) -> [N]`` scores; ``outputs`` are the logits (under
                ``score="logits"``) or the model's outputs.
            top_k: explain each sample's ``k`` highest classes.
            batch_size: samples per compiled step (default 32).

        Returns:
            An :class:`Explanation`: ``heatmaps [N, *input spatial] float32 in [0, 1]``,
            ``raw [N, *layer spatial] float32 >= 0``, ``targets [N] int64``, ``scores [N] float32``
            (with ``k`` classes per sample: ``[N, k, ...]`` each).
        """
        if isinstance(inputs, tf.data.Dataset):
            inputs = pipeline.collect(self, inputs)
        parts = list(self.run(inputs, targets, top_k=top_k, batch_size=batch_size))
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return Explanation.from_arrays(merged, method=self.name, layer=self.layer_names)

    def compiled_step(self, plan: targets_lib.Plan | Callable | None = None) -> Callable:
        """The ``tf.function`` that explains one batch: ``step(inputs, codes [B, k]) -> dict``.
        Built (not yet traced) on first request and reused; one per kind of target (a
        :class:`~tf_gradcam.choose.targets.Plan`, or a callable target, or ``None`` for
        classes)."""
        if not isinstance(plan, targets_lib.Plan):
            plan = targets_lib.resolve(plan, self.head_info) if plan is not None else (
                targets_lib.Plan(key=("classes", 1)))
        return self._steps.get(self, plan)

    def explain_batch(self, inputs: list, classes: Any = None, score_fn: Callable | None = None,
                      *, target_arg: Any = None) -> dict:
        """One compiled step on tensors already batched and checked, for loops of your own
        (``run`` is the package's own loop). Returns tensors (``[B, ...]``).

        ``inputs``: one ``[B, ...]`` tensor per model input, ``B >= 1`` (TensorFlow's
        convolutions refuse an empty batch); ``classes``: ``[B] int32`` class per sample, -1 for
        its top class (ignored when ``score_fn`` is given). ``target_arg`` is ``classes``'
        former name, accepted with a warning."""
        if target_arg is not None:
            warnings.warn("explain_batch(target_arg=...) is now explain_batch(classes=...).",
                          DeprecationWarning, stacklevel=2)
            classes = target_arg
        batch = tf.shape(inputs[0])[0]
        if score_fn is not None or classes is None:
            codes = tf.fill([batch, 1], tf.constant(targets_lib.TOP_CLASS, tf.int32))
        else:
            codes = tf.reshape(tf.cast(classes, tf.int32), [-1, 1])
        out = self.compiled_step(score_fn)(list(inputs), codes, {})
        return {k: v for k, v in out.items() if not k.startswith(diagnose.PREFIX)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model.name!r}, layer={self.layer_names!r})"
