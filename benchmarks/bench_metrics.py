"""Time of each metric per image, as a ratio to one forward pass of the same model.

    python benchmarks/bench_metrics.py                 # writes benchmarks/results/metrics.json
    python benchmarks/bench_metrics.py --models demo --images 8

For each model (the demo's small CNN at 64 x 64; MobileNetV2 with ``weights=None`` at 128 x 128)
it times one call of every metric on ``--images`` images and Grad-CAM maps, after a first call
that traces and compiles, and divides the time per image by the time of one image's forward pass
(a compiled ``model(x)`` on a batch of 32). ``passes`` is the number of forward passes (or, for
the metrics that explain, explanations) a metric needs per image in principle, so
``ratio / passes`` is its overhead over the bare model calls: ~1 means the metric costs its
forward passes and nothing else; ROAD's imputation (one sparse solve per image, order and
fraction) is what it adds on top. Median of ``--repeats`` calls.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _record import Record, median_time  # noqa: E402

FRACTIONS = 9  # ROAD's default fractions
STEPS = 50  # deletion / insertion default
SAMPLES = {"mu_fidelity": 200, "max_sensitivity": 50}


def cases(names):
    import keras

    from tf_gradcam.data import make_shapes, small_cnn

    for name in names:
        keras.utils.set_random_seed(0)
        if name == "demo":
            yield "small_cnn 64x64", small_cnn(), make_shapes(64, seed=1).images
        elif name == "mobilenetv2":
            model = keras.applications.MobileNetV2(weights=None, input_shape=(128, 128, 3),
                                                   classes=10)
            yield "MobileNetV2 128x128", model, np.random.default_rng(0).random(
                (64, 128, 128, 3), dtype=np.float32)
        else:
            raise SystemExit(f"unknown model {name!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="demo,mobilenetv2")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import tensorflow as tf

    import tf_gradcam as tfg
    from tf_gradcam import metrics

    record = Record("metrics", images=args.images, repeats=args.repeats,
                    road_fractions=FRACTIONS, deletion_steps=STEPS, samples=SAMPLES,
                    forward="compiled model(x), batch 32, per image")
    for desc, model, pool in cases(args.models.split(",")):
        x = pool[: args.images]
        forward = tf.function(lambda t: model(t, training=False))
        batch = tf.constant(pool[:32])
        forward(batch)
        t_forward = median_time(lambda: forward(batch).numpy(), 5) / 32
        explainer = tfg.GradCAM(model)
        maps = explainer(x)
        classes = maps.targets
        layers = len(metrics.randomizable_layers(model))
        runs = {
            "pointing_game": (lambda: metrics.pointing_game(maps, np.ones(maps.heatmaps.shape,
                                                                          bool)), 0),
            "box_iou": (lambda: metrics.box_iou(tfg.localize.bboxes(maps), [0, 0, 8, 8]), 0),
            "sparseness": (lambda: metrics.sparseness(maps), 0),
            "complexity": (lambda: metrics.complexity(maps), 0),
            "deletion": (lambda: metrics.deletion_curve(model, x, maps, steps=STEPS), STEPS + 1),
            "insertion": (lambda: metrics.insertion_curve(model, x, maps, steps=STEPS),
                          STEPS + 1),
            "average_drop": (lambda: metrics.confidence_scores(model, x, maps), 2),
            "road (scipy)": (lambda: metrics.road(model, x, maps, solver="scipy"),
                             2 * FRACTIONS + 1),
            "road (cg)": (lambda: metrics.road(model, x, maps, solver="cg"), 2 * FRACTIONS + 1),
            "mu_fidelity": (lambda: metrics.mu_fidelity(model, x, maps,
                                                        samples=SAMPLES["mu_fidelity"]),
                            SAMPLES["mu_fidelity"] + 1),
            "max_sensitivity": (lambda: metrics.max_sensitivity(
                explainer, x, classes, samples=SAMPLES["max_sensitivity"]),
                SAMPLES["max_sensitivity"] + 1),
            "sanity (cascading)": (lambda: metrics.model_randomization(model, x, "gradcam",
                                                                       classes), layers + 1),
        }
        explain_time = median_time(lambda: explainer(x, classes), args.repeats) / len(x)
        record.add(model=desc, metric="(Grad-CAM explanation)", seconds_per_image=explain_time,
                   ratio=explain_time / t_forward, passes=1,
                   overhead=explain_time / t_forward)
        for name, (run, passes) in runs.items():
            run()  # trace and compile outside the timing
            reps = 1 if name.startswith(("road", "sanity")) else args.repeats
            per_image = median_time(run, reps) / len(x)
            ratio = per_image / t_forward
            record.add(model=desc, metric=name, seconds_per_image=per_image, ratio=ratio,
                       passes=passes, overhead=ratio / passes if passes else None)
        record.data["setup"].setdefault("forward_seconds", {})[desc] = t_forward
    print("wrote", record.save())
    return 0


if __name__ == "__main__":
    sys.exit(main())
