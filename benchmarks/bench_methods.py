"""Time per explained batch as a ratio to plain inference, in one process.

    python benchmarks/bench_methods.py                       # Grad-CAM, the issue-2 table
    python benchmarks/bench_methods.py --methods all         # every method (slow: Score-CAM!)
    python benchmarks/bench_methods.py --models mobilenetv2 --batches 1 --methods scorecam

For each model (``weights=None``, 224x224, 1000 classes), batch size and XLA setting it times:

* ``infer``: a compiled model call on the same batch (``tf.function(model)``, same jit flag);
* each method: one explainer call (``explainer(x)``: forward, gradients, weights, upsampled and
  scaled heatmaps, copied back to NumPy);
* ``keras-io``: the widely copied eager recipe (a sub-model returning the layer's output and the
  predictions, an eager GradientTape, NumPy normalisation), as the peer baseline.

Ratios, not seconds, are what to compare: the machines are noisy, and the ratio to the same
model's inference cancels most of it. Runs are interleaved and the median of ``--repeats`` is kept.
Score-CAM costs one full forward pass per channel: it is timed at batch 1 only, against the floor
of ``K`` forward passes of one image, both at the chunk size it batches those passes in and one
at a time. (Ablation-CAM also runs ``K`` ablated copies, but of the layers after the target only.)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_gradcam as tfg  # noqa: E402

MODELS = {
    "mobilenetv2": (keras.applications.MobileNetV2, "out_relu"),
    "resnet50": (keras.applications.ResNet50, "conv5_block3_out"),
}
# One full forward pass per channel. (Ablation-CAM replays only the layers after the target,
# so it is timed like the others.)
PERTURBATION = {"scorecam"}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def keras_io_recipe(model, layer_name):
    """The keras.io Grad-CAM example's approach (eager, rebuilt tape per call), for comparison."""
    grad_model = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])

    def run(x):
        maps = []
        with tf.GradientTape() as tape:
            acts, preds = grad_model(x)
            top = tf.argmax(preds, axis=1)
            score = tf.gather(preds, top, axis=1, batch_dims=1)
        grads = tape.gradient(score, acts)
        pooled = tf.reduce_mean(grads, axis=(1, 2))
        for i in range(len(x)):
            heat = acts[i] @ pooled[i][..., None]
            heat = tf.squeeze(heat)
            heat = tf.maximum(heat, 0) / (tf.math.reduce_max(heat) + 1e-12)
            maps.append(heat.numpy())
        return maps

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--methods", nargs="+", default=["gradcam"],
                        help="method names, or 'all' for every registered method")
    parser.add_argument("--xla", choices=["off", "on", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the keras-io eager recipe")
    args = parser.parse_args(argv)
    methods = sorted(tfg.METHODS) if args.methods == ["all"] else args.methods
    xla_modes = {"off": [False], "on": [True], "both": [False, True]}[args.xla]

    print(f"# tf_gradcam {tfg.__version__} | TensorFlow {tf.__version__} | "
          f"Keras {keras.__version__} | Python {platform.python_version()} | "
          f"{platform.machine()} | "
          f"{os.cpu_count()} CPU cores | devices: "
          f"{', '.join(d.device_type for d in tf.config.list_logical_devices())}")
    print(f"# input {args.size}x{args.size}x3, weights=None, median of {args.repeats} runs, "
          "ratio = time / compiled inference time on the same batch")
    print(f"{'model':<12} {'batch':>5} {'xla':>4} {'method':<16} {'ms/batch':>10} {'ms/image':>9}"
          f" {'x infer':>8}  note")
    rng = np.random.default_rng(0)
    for model_name in args.models:
        ctor, layer = MODELS[model_name]
        keras.utils.set_random_seed(0)
        model = ctor(weights=None, input_shape=(args.size, args.size, 3))
        channels = model.get_layer(layer).output.shape[-1]
        for batch in args.batches:
            x = rng.random((batch, args.size, args.size, 3), dtype=np.float32)
            xt = tf.constant(x)
            for xla in xla_modes:
                infer = tf.function(lambda t: model(t, training=False), jit_compile=xla)
                infer(xt).numpy()
                runners, runners_chunk = {}, {}
                for name in methods:
                    if name in PERTURBATION and batch > 1:
                        continue  # K forward passes per image: batch 1 says it all
                    cls = tfg.get_method(name)
                    explainer = cls(model, layer if cls.uses_layer else None, jit_compile=xla)
                    runners[name] = (lambda e=explainer: e(x, batch_size=batch))
                    runners_chunk[name] = getattr(explainer, "batch_size", 1)
                if args.peer and not xla:
                    recipe = keras_io_recipe(model, layer)
                    runners["keras-io"] = (lambda r=recipe: r(xt))
                for run in runners.values():
                    run()  # trace and compile outside the timing
                t_inf = median_time(lambda: infer(xt).numpy(), args.repeats)
                if batch == 1:
                    infer_one = t_inf
                for name, run in runners.items():
                    reps = 1 if name in PERTURBATION else args.repeats
                    t = median_time(run, reps)
                    note = ""
                    if name in PERTURBATION:
                        # The floor is K forward passes of one image, at the chunk size the
                        # method batches them in (and, for reference, one at a time).
                        chunk = runners_chunk[name]
                        xc = tf.constant(rng.random((chunk,) + x.shape[1:], dtype=np.float32))
                        per_image = median_time(lambda: infer(xc).numpy(), args.repeats) / chunk
                        note = (f"floor K={channels} passes: {t / (channels * per_image):.2f}x "
                                f"(at batch {chunk}); {t / (channels * infer_one):.2f}x "
                                "(at batch 1)")
                    print(f"{model_name:<12} {batch:>5} {'on' if xla else 'off':>4} {name:<16} "
                          f"{t * 1e3:>10.1f} {t * 1e3 / batch:>9.2f} {t / t_inf:>8.2f}  {note}")
                print(f"{model_name:<12} {batch:>5} {'on' if xla else 'off':>4} "
                      f"{'(inference)':<16} {t_inf * 1e3:>10.1f} {t_inf * 1e3 / batch:>9.2f} "
                      f"{1.0:>8.2f}")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
