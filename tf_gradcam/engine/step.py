"""The compiled step: forward, gradients, the method's weighting, map, upsampling and scaling for
a whole batch, in one ``tf.function`` (optionally XLA), traced once per kind of target.

The batch axis is unknown in the step's signature, so a new batch size never traces again;
class targets are tensors, so another class never traces again either. A callable target is
Python code that becomes part of the graph: each distinct callable gets its own step, and only
the last :data:`MAX_CALLABLE_STEPS` are kept.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Hashable

import tensorflow as tf

from tf_gradcam.choose.targets import Plan
from tf_gradcam.engine import checks, diagnose, resize, smooth
from tf_gradcam.engine.forward import Forward

if TYPE_CHECKING:
    from tf_gradcam.engine.explainer import Explainer

#: Distinct callables kept compiled per explainer; older ones are dropped (pass the same
#: callable object again to reuse its compiled step).
MAX_CALLABLE_STEPS = 8


def step_body(explainer: Explainer, inputs: list, codes: tf.Tensor, plan: Plan,
              values: dict) -> dict:
    """What one compiled step computes for a batch: a dict of ``[B * k, ...]`` tensors."""
    aug = explainer.aug_smooth
    if aug is not None:  # every augmented copy in this one batch
        m = len(aug.copies)
        inputs = smooth.expand(inputs, explainer.spatial_input, aug)
        codes = tf.repeat(codes, m, axis=0)
        per_sample = getattr(plan.target, "per_sample", ())
        values = {k: tf.repeat(v, m, axis=0) if k in per_sample else v for k, v in values.items()}
    forward = Forward(explainer, inputs, codes, plan.fn, plan.target, values)
    if aug is not None:
        forward.rank_samples = smooth.identity_samples(tf.shape(inputs[0])[0], aug)
    ctxs = forward.contexts()
    ctx = ctxs[0]
    if len(ctxs) > 1:
        # Fusion: each layer's map upsampled to the input, then one map at the input's
        # resolution (per-layer extras such as weights differ in size: not returned).
        raw = tf.cast(explainer.fuse([explainer.heatmap(c, explainer.compute(c)) for c in ctxs]),
                      tf.float32)
        full, extras = raw, {}
    else:
        raw = tf.cast(explainer.compute(ctx), tf.float32)
        full, extras = explainer.heatmap(ctx, raw), ctx.extras
    out = {
        "full": tf.cast(full, tf.float32),
        "raw": raw,
        "targets": ctx.targets,
        "scores": ctx.scores,
        **{k: tf.cast(v, tf.float32) for k, v in extras.items()},
        **{diagnose.PREFIX + k: v for k, v in forward.diagnostics.items()},
    }
    if aug is not None:
        out = smooth.merge(out, aug, forward.k)
    out["heatmaps"] = resize.scale_by_max(out.pop("full"))
    return out


class _Step:
    """The Python body of one compiled step, as an object of its own.

    ``tf.function`` counts traces per Python function's code object to warn about "excessive
    retracing"; closures made by one function share that code, so five explainers, each
    tracing once, would trigger the warning. A callable object is counted on its own.
    """

    def __init__(self, explainer: Explainer, plan: Plan) -> None:
        self.explainer = explainer
        self.plan = plan

    def __call__(self, inputs: list, codes: tf.Tensor, values: dict) -> dict:
        # Keras layers open name scopes named after themselves; TensorFlow refuses a root
        # scope that starts with "_", so give them a parent (model.predict does the same).
        with tf.name_scope("tf_gradcam"):
            return step_body(self.explainer, inputs, codes, self.plan, values)


def make_step(explainer: Explainer, plan: Plan) -> Callable:
    """The ``tf.function`` ``step(inputs, codes [B, k] int32, values) -> dict`` for ``plan``'s
    kind (``values``: a ready-made target's tensors, else ``{}``)."""
    return tf.function(
        _Step(explainer, plan),
        input_signature=[explainer.input_specs,
                         tf.TensorSpec([None, plan.k], tf.int32, name="targets"),
                         plan.value_specs()],
        jit_compile=explainer.jit_compile,
        reduce_retracing=True,
        # The step is plain Python at trace time: no tensor-dependent control flow to convert.
        autograph=False,
    )


#: After this many compilations of one callable's code (new function objects, e.g. a lambda
#: written in the call), the explainer says how to avoid them.
RECOMPILE_WARNING = 3


class StepCache:
    """One compiled step per kind of target; callables bounded to :data:`MAX_CALLABLE_STEPS`."""

    def __init__(self) -> None:
        self.steps: dict[Hashable, tuple[Any, Plan]] = {}  # tf.function, its plan
        self.retired_traces = 0
        self.compiled: dict[Any, int] = {}  # callable code object -> compilations

    def get(self, explainer: Explainer, plan: Plan) -> Callable:
        key = plan.key
        if key not in self.steps:
            callables = [k for k, (_, p) in self.steps.items() if p.fn is not None]
            if plan.fn is not None and len(callables) >= MAX_CALLABLE_STEPS:
                old, _ = self.steps.pop(callables[0])
                self.retired_traces += old.experimental_get_tracing_count()
            # The plan is kept with its step: it holds the callable, whose id is the key.
            self.steps[key] = (make_step(explainer, plan), plan)
            if plan.fn is not None:
                self._count(plan.fn)
        return self.steps[key][0]

    def _count(self, fn: Any) -> None:
        code = getattr(fn, "__code__", None)
        if code is None:
            return
        self.compiled[code] = self.compiled.get(code, 0) + 1
        if self.compiled[code] == RECOMPILE_WARNING:
            where = f"{code.co_filename}:{code.co_firstlineno}"
            warnings.warn(
                f"The targets callable {fn.__name__} ({where}) was compiled "
                f"{RECOMPILE_WARNING} times: each call passed a new function object (a lambda "
                "written in the call?), and each one traces the step again, about 90x slower "
                "than reusing it. Define the callable once and pass the same object, or use a "
                "ready-made target (tfg.targets), whose values are tensors.", RuntimeWarning,
                stacklevel=checks.user_stacklevel())

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def trace_count(self) -> int:
        live = sum(step.experimental_get_tracing_count() for step, _ in self.steps.values())
        return live + self.retired_traces
