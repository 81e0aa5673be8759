"""GradCAMCallback's overhead as a share of epoch time, in one process.

    python benchmarks/bench_callback.py                    # demo CNN and MobileNetV2, ~3-4 min
    python benchmarks/bench_callback.py --models demo --repeats 5
    python benchmarks/bench_callback.py --quick            # smoke test: tiny epochs, 1 repeat

For each model it trains one network and alternates ``fit`` runs of ``--epochs`` epochs without
and with the callback (16 probe images, logged to TensorBoard every epoch; one callback object
reused, so its compiled step is traced once, in the first run). A timer callback, last in the
list, stamps every ``on_epoch_begin`` and ``on_train_end``: an epoch's time runs from its start to
the next one's, so it includes the callback's ``on_epoch_end`` work. The first epoch of each run
is dropped and the median over the rest is kept. The callback's own time per epoch (explain,
render, encode, write) is also measured directly, which is less noisy on a shared machine.

Models (``weights=None``, nothing downloaded):

* ``demo``: ``tf_gradcam.data.small_cnn`` (64 x 64 x 3, 3 classes) on ``make_shapes`` images,
  the demo's epoch (3000 images, batch 32);
* ``mobilenetv2``: ``keras.applications.MobileNetV2`` at 96 x 96 x 3, 10 classes, on random
  images (``--mobilenet-images`` per epoch, batch 32).

Goal: overhead <= 5 % of an epoch. Writes ``benchmarks/results/callback.json`` (``--quick``:
``callback.quick.json``, which neither git nor ``benchmarks/report.py`` reads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_gradcam as tfg  # noqa: E402
from _record import Record  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.stamps = []

    def on_epoch_begin(self, epoch, logs=None):
        self.stamps.append(time.perf_counter())

    def on_train_end(self, logs=None):
        self.stamps.append(time.perf_counter())

    def epochs(self):
        return list(np.diff(self.stamps))


class TimedGradCAM(tfg.GradCAMCallback):
    """The callback, recording the wall time of each logging step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_seconds = []

    def log(self, step, **kwargs):
        start = time.perf_counter()
        super().log(step, **kwargs)
        self.log_seconds.append(time.perf_counter() - start)


def demo_case(args):
    from tf_gradcam.data import make_shapes, small_cnn

    train = make_shapes(args.demo_images, seed=1)
    probes = make_shapes(args.probes, seed=2)
    keras.utils.set_random_seed(0)
    model = small_cnn((64, 64, 3), len(train.class_names))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    desc = f"demo CNN (small_cnn) 64x64, {args.demo_images} images/epoch"
    return desc, model, train.images, train.labels, (probes.images, probes.labels), \
        train.class_names


def mobilenet_case(args):
    size, n = args.mobilenet_size, args.mobilenet_images
    rng = np.random.default_rng(0)
    x = rng.random((n, size, size, 3), dtype=np.float32) * 2 - 1
    y = rng.integers(0, 10, n)
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), classes=10)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    desc = f"MobileNetV2 {size}x{size}, {n} images/epoch"
    return desc, model, x, y, (x[: args.probes], y[: args.probes]), None


def bench(case, args, log_root):
    desc, model, x, y, probes, class_names = case(args)
    callback = TimedGradCAM(probes, os.path.join(log_root, case.__name__),
                            class_names=class_names)
    fit = dict(batch_size=32, epochs=args.epochs, verbose=0)
    setup_start = time.perf_counter()
    model.fit(x, y, callbacks=[callback, EpochTimer()], **fit)  # warm-up: traces everything
    warmup = time.perf_counter() - setup_start
    without, with_cb = [], []
    callback.log_seconds.clear()
    for _ in range(args.repeats):
        for use, store in ((False, without), (True, with_cb)):
            timer = EpochTimer()
            model.fit(x, y, callbacks=([callback] if use else []) + [timer], **fit)
            store.extend(timer.epochs()[1:])
    base, loaded = statistics.median(without), statistics.median(with_cb)
    own = statistics.median(callback.log_seconds)
    return dict(model=desc, epoch_s=base, epoch_callback_s=loaded,
                overhead=(loaded - base) / base, callback_s=own, share=own / base,
                traces=callback.explainer.trace_count, warmup_s=warmup, epochs=len(without))


QUICK = dict(repeats=1, epochs=2, probes=4, demo_images=256, mobilenet_images=64,
             mobilenet_size=64)
DEFAULTS = dict(repeats=3, epochs=3, probes=16, demo_images=3000, mobilenet_images=384,
                mobilenet_size=96)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,mobilenetv2")
    parser.add_argument("--repeats", type=int, help="alternating run pairs (3)")
    parser.add_argument("--epochs", type=int, help="epochs per run, first dropped (3)")
    parser.add_argument("--probes", type=int, help="probe images logged every epoch (16)")
    parser.add_argument("--demo-images", type=int, help="(3000)")
    parser.add_argument("--mobilenet-images", type=int, help="(384)")
    parser.add_argument("--mobilenet-size", type=int, help="(96)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: tiny epochs, 1 repeat (results/callback.quick.json)")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    record = Record(
        "callback", quick=args.quick, script="benchmarks/bench_callback.py",
        models=args.models.split(","), probes=args.probes, repeats=args.repeats,
        epochs=args.epochs, batch_size=32, weights=None,
        method=("alternating fit runs without and with the callback (logging every epoch to "
                "TensorBoard), first epoch of each run dropped, median epoch; the callback's "
                "own time per logged epoch measured directly"),
        gpus=len(tf.config.list_physical_devices("GPU")))
    print(f"{args.probes} probe images logged every epoch (overlays to TensorBoard); "
          f"{args.repeats} x {args.epochs}-epoch runs each way, alternating; median epoch.")
    cases = {"demo": demo_case, "mobilenetv2": mobilenet_case}
    with tempfile.TemporaryDirectory() as log_root:
        for name in args.models.split(","):
            record.add(**bench(cases[name], args, log_root))
    print("overhead: median epoch with / without - 1 (noisy on a shared machine); share: the "
          "callback's own time per logged epoch / median epoch without it. Goal <= 5 %.")
    print("wrote", record.save())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
