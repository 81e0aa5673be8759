"""Time per explained batch as a ratio to compiled inference, in one process.

    python benchmarks/bench_methods.py                          # every part (~25 min on 2 cores)
    python benchmarks/bench_methods.py --parts gradcam topk     # some parts
    python benchmarks/bench_methods.py --quick                  # smoke test: tiny sizes, 1 repeat
    python benchmarks/bench_methods.py --parts methods --models mobilenetv2 --methods scorecam

Every part writes its own record, ``benchmarks/results/<record>.json`` (``--quick``:
``<record>.quick.json``, which neither git nor ``benchmarks/report.py`` reads), so a part run
alone replaces only its own figures:

* ``gradcam`` -> ``gradcam.json``: Grad-CAM on MobileNetV2 and ResNet50 (``weights=None``,
  224x224, 1000 classes) at the last conv layer, batch 1 and 32, XLA off and on, and the
  keras-io recipe (the widely copied eager one: a sub-model returning the layer's output and the
  predictions, an eager ``GradientTape``, a NumPy loop per image), the peer, XLA off;
* ``methods`` -> ``methods.json``: every method of ``tfg.METHODS`` at its default layer
  (``layer=None``) on both models at ``--methods-batch`` images, XLA off. The Score-CAM family
  (one masked forward pass per channel and copy) runs at batch 1 against its floor: that many
  forward passes of one image, at the chunk size it batches them in (and, for reference, one at a
  time). SS-CAM (35 copies per channel) and IS-CAM (10) are run with ``--family-max-channels``
  channels: exactly, SS-CAM on ResNet50 would take half an hour;
* ``topk`` -> ``topk.json``: Grad-CAM with ``top_k=5`` against one class (the top one), ResNet50
  at its last conv layer. Goal: at most 2x one class;
* ``aug`` -> ``aug_smooth.json``: ``aug_smooth=True`` (6 augmented copies per image in one step)
  against its floor, one forward-backward of all the copies: Grad-CAM on a batch 6x larger;
* ``maxchannels`` -> ``max_channels.json``: Score-CAM with ``max_channels`` (the channels of
  highest spatial deviation only) against exact Score-CAM: time per image, and the Pearson
  correlation of each image's heatmap with the exact one (mean and minimum over images). On
  MobileNetV2 (exact Score-CAM is ~7 s per image there, ~50 s on ResNet50).

``inference`` is ``tf.function(model)`` on the same batch (same ``jit_compile``), copied back to
NumPy; an explainer call is ``explainer(x)``: input checks, forward and backward pass, weights,
map, in-graph upsampling and scaling, copy back to NumPy. Ratios, not seconds, are what to
compare: the machines are shared and noisy, and the ratio to the same model's inference on the
same batch, measured in the same process with the calls interleaved (``median_times``), cancels
most of it. Every explainer is called once before timing (trace and compile).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_gradcam as tfg  # noqa: E402
from _record import Record, median_times  # noqa: E402

MODELS = {
    "mobilenetv2": (keras.applications.MobileNetV2, "MobileNetV2", "out_relu"),
    "resnet50": (keras.applications.ResNet50, "ResNet50", "conv5_block3_out"),
}
PARTS = ("gradcam", "methods", "topk", "aug", "maxchannels")
RECORDS = {"gradcam": "gradcam", "methods": "methods", "topk": "topk", "aug": "aug_smooth",
           "maxchannels": "max_channels"}
# What --quick changes (unless the option is given): tiny inputs, one repeat, small counts.
QUICK = dict(size=64, batches=[1, 2], methods_batch=2, repeats=1, topk_batches=[2],
             max_channels=[4, 16], correlation_images=2, family_max_channels=4,
             scorecam_max_channels=16)
DEFAULTS = dict(size=224, batches=[1, 32], methods_batch=8, repeats=3, topk_batches=[8, 32],
                max_channels=[64, 256], correlation_images=8, family_max_channels=64,
                scorecam_max_channels=0)


def build(model_name: str, size: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    return MODELS[model_name][0](weights=None, input_shape=(size, size, 3))


def inputs(batch: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, size, size, 3), dtype=np.float32)


def compiled_inference(model: keras.Model, jit_compile: bool = False):
    """``x -> model(x)`` compiled, copied back to NumPy; traced for ``x``'s shape on first use."""
    fn = tf.function(lambda t: model(t, training=False), jit_compile=jit_compile)
    return lambda x: fn(x).numpy()


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


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


# --------------------------------------------------------------------------- parts
def part_gradcam(args, record: Record) -> None:
    xla_modes = {"off": [False], "on": [True], "both": [False, True]}[args.xla]
    for model_name in args.models:
        model = build(model_name, args.size)
        _, label, layer = MODELS[model_name]
        for batch in args.batches:
            x = inputs(batch, args.size)
            xt = tf.constant(x)
            for xla in xla_modes:
                infer = compiled_inference(model, xla)
                explainer = tfg.GradCAM(model, layer, jit_compile=xla)
                runs = {"inference": lambda: infer(xt),
                        "gradcam": lambda e=explainer: e(x, batch_size=batch)}
                if args.peer and not xla:
                    recipe = keras_io_recipe(model, layer)
                    runs["keras-io"] = lambda: recipe(xt)
                for run in runs.values():
                    run()  # trace and compile outside the timing
                t = median_times(runs, args.repeats)
                peer = t.get("keras-io")
                record.add(model=label, layer=layer, batch=batch, xla=xla,
                           inference_ms=ms(t["inference"]), gradcam_ms=ms(t["gradcam"]),
                           ratio=t["gradcam"] / t["inference"],
                           keras_io_ms=None if peer is None else ms(peer),
                           keras_io_ratio=None if peer is None else peer / t["inference"])


def family(cls) -> bool:
    """The Score-CAM family: one full masked forward pass per channel (and copy)."""
    return issubclass(cls, tfg.ScoreCAM)


def part_methods(args, record: Record) -> None:
    names = sorted(tfg.METHODS) if args.methods == ["all"] else args.methods
    batch = args.methods_batch
    for model_name in args.models:
        model = build(model_name, args.size)
        label = MODELS[model_name][1]
        infer = compiled_inference(model)
        x = inputs(batch, args.size)
        xt = tf.constant(x)
        infer(xt)
        cheap, slow = {}, {}
        for name in names:
            cls = tfg.get_method(name)
            options = {}
            limit = args.scorecam_max_channels if name == "scorecam" else args.family_max_channels
            if family(cls) and limit:
                options["max_channels"] = limit
            explainer = cls(model, **options)
            (slow if family(cls) else cheap)[name] = (explainer, options)
        runs = {"inference": lambda: infer(xt)}
        for name, (explainer, _) in cheap.items():
            runs[name] = lambda e=explainer: e(x, batch_size=batch)
        noisy = [e.num_samples for e, _ in cheap.values()
                 if isinstance(e, tfg.SmoothGradCAMPlusPlus)]
        if noisy:  # its floor: the clean and every noisy copy's rows, one inference
            rows = tf.constant(inputs((noisy[0] + 1) * batch, args.size, seed=1))
            runs["noisy rows"] = lambda: infer(rows)
        for run in runs.values():
            run()  # trace and compile outside the timing
        t = median_times(runs, args.repeats)
        for name, (explainer, options) in cheap.items():
            ratio = t[name] / t["inference"]
            floor = {}
            if isinstance(explainer, tfg.SmoothGradCAMPlusPlus):
                # num_samples noisy copies and the clean input: one batch of (n + 1) B rows
                floor = dict(passes=explainer.num_samples + 1, floor_ms=ms(t["noisy rows"]),
                             floor_ratio=t[name] / t["noisy rows"],
                             floor="inference of the clean and noisy rows in one batch")
            record.add(model=label, method=name, cls=type(explainer).__name__,
                       layer=explainer.layer_names, batch=batch,
                       options=_options(options), inference_ms=ms(t["inference"]),
                       ms=ms(t[name]), ratio=ratio, **floor)
        # Score-CAM family: batch 1, one call each, against the floor of its forward passes.
        one = x[:1]
        for name, (explainer, options) in slow.items():
            # trace and compile (a call as long as a timed one); K from its weights [1, K]
            channels = int(explainer(one).weights.shape[-1])
            kept = channels if explainer.max_channels is None else min(channels,
                                                                        explainer.max_channels)
            passes = kept * explainer.copies
            chunk = min(explainer.perturbation_batch_size, passes)
            chunks = -(-passes // chunk)  # the last one padded to the chunk's static size
            xc = tf.constant(inputs(chunk, args.size, seed=1))
            x1 = tf.constant(one)
            infer(xc), infer(x1)
            t = median_times({name: lambda e=explainer: e(one), "chunk": lambda: infer(xc),
                              "one": lambda: infer(x1)}, {name: 1, "chunk": args.repeats,
                                                          "one": args.repeats})
            floor = chunks * t["chunk"]
            record.add(model=label, method=name, cls=type(explainer).__name__,
                       layer=explainer.layer_names, batch=1,
                       options=_options(options), inference_ms=ms(t["one"]), ms=ms(t[name]),
                       ratio=t[name] / t["one"], passes=passes, chunk=chunk, chunks=chunks,
                       floor_ms=ms(floor), floor_ratio=t[name] / floor,
                       floor="chunks x inference of one chunk",
                       floor_one_ratio=t[name] / (passes * t["one"]))
        del cheap, slow


def _options(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def part_topk(args, record: Record) -> None:
    model = build("resnet50", args.size)
    _, label, layer = MODELS["resnet50"]
    infer = compiled_inference(model)
    explainer = tfg.GradCAM(model, layer)
    for batch in args.topk_batches:
        x = inputs(batch, args.size)
        xt = tf.constant(x)
        runs = {"inference": lambda: infer(xt),
                "one": lambda: explainer(x, batch_size=batch),
                "topk": lambda: explainer(x, top_k=args.top_k, batch_size=batch)}
        for run in runs.values():
            run()
        t = median_times(runs, args.repeats)
        record.add(model=label, layer=layer, batch=batch, k=args.top_k,
                   inference_ms=ms(t["inference"]), one_ms=ms(t["one"]), topk_ms=ms(t["topk"]),
                   ratio_to_one=t["topk"] / t["one"],
                   per_class=t["topk"] / t["one"] / args.top_k,
                   one_ratio=t["one"] / t["inference"], topk_ratio=t["topk"] / t["inference"])


def part_aug(args, record: Record) -> None:
    batch = args.methods_batch
    for model_name in args.models:
        model = build(model_name, args.size)
        _, label, layer = MODELS[model_name]
        infer = compiled_inference(model)
        plain = tfg.GradCAM(model, layer)
        smooth = tfg.GradCAM(model, layer, aug_smooth=True)
        copies = len(smooth.aug_smooth.copies)
        x = inputs(batch, args.size)
        big = inputs(batch * copies, args.size, seed=1)
        xt = tf.constant(x)
        runs = {"inference": lambda: infer(xt),
                "gradcam": lambda: plain(x, batch_size=batch),
                "aug_smooth": lambda: smooth(x, batch_size=batch),
                "floor": lambda: plain(big, batch_size=batch * copies)}
        for run in runs.values():
            run()
        t = median_times(runs, args.repeats)
        record.add(model=label, layer=layer, batch=batch, copies=copies,
                   inference_ms=ms(t["inference"]), gradcam_ms=ms(t["gradcam"]),
                   aug_smooth_ms=ms(t["aug_smooth"]), floor_ms=ms(t["floor"]),
                   ratio_to_floor=t["aug_smooth"] / t["floor"],
                   ratio_to_gradcam=t["aug_smooth"] / t["gradcam"],
                   ratio=t["aug_smooth"] / t["inference"])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def part_maxchannels(args, record: Record) -> None:
    from tf_gradcam.data import make_shapes

    n = args.correlation_images
    images = make_shapes(n, size=args.size, seed=3).images.astype(np.float32)
    for model_name in args.maxchannels_models:
        model = build(model_name, args.size)
        _, label, layer = MODELS[model_name]
        infer = compiled_inference(model)
        exact = tfg.ScoreCAM(model, layer)
        exact(images[:1])  # trace and compile
        start = time.perf_counter()
        ref = exact(images, batch_size=n)  # one call: its maps are the reference
        t = {"exact": time.perf_counter() - start}
        channels = int(ref.weights.shape[-1])
        t_exact = t["exact"] / n

        def floor(kept: int) -> float:
            """Per image: the call's chunks of masked passes x one chunk's inference."""
            chunk = min(exact.perturbation_batch_size, kept)
            xc = tf.constant(inputs(chunk, args.size, seed=1))
            infer(xc)
            one_chunk = median_times({"chunk": lambda: infer(xc)}, args.repeats)["chunk"]
            return -(-n * kept // chunk) * one_chunk / n

        record.add(model=label, layer=layer, max_channels=None, channels=channels,
                   passes=channels, ms_per_image=ms(t_exact), speedup=1.0,
                   floor_ratio=t_exact / floor(channels), pearson_mean=1.0, pearson_min=1.0)
        for m in args.max_channels:
            approx = tfg.ScoreCAM(model, layer, max_channels=m)
            approx(images[:1])
            t = median_times({"approx": lambda a=approx: a(images, batch_size=n)}, args.repeats)
            maps = approx(images, batch_size=n).heatmaps
            r = [pearson(maps[i], ref.heatmaps[i]) for i in range(n)]
            kept = min(m, channels)
            t_m = t["approx"] / n
            record.add(model=label, layer=layer, max_channels=m, channels=channels,
                       passes=kept, ms_per_image=ms(t_m), speedup=t_exact / t_m,
                       floor_ratio=t_m / floor(kept),
                       pearson_mean=float(np.nanmean(r)), pearson_min=float(np.nanmin(r)))


PART_FUNCS = {"gradcam": part_gradcam, "methods": part_methods, "topk": part_topk,
              "aug": part_aug, "maxchannels": part_maxchannels}


def setup_of(part: str, args) -> dict:
    common = dict(input=f"{args.size}x{args.size}x3", weights=None, classes=1000,
                  repeats=args.repeats, timing="median, calls interleaved",
                  inference="tf.function(model) on the same batch, same jit_compile, "
                            "copied to NumPy")
    if part == "gradcam":
        return dict(common, models=args.models, batches=args.batches, xla=args.xla,
                    peer="keras-io recipe (eager sub-model and tape, NumPy per image), XLA off")
    if part == "methods":
        return dict(common, models=args.models, batch=args.methods_batch, xla=False,
                    layer="each method's default (layer=None)",
                    family=("Score-CAM family at batch 1, one timed call; floor = its chunks of "
                            "masked passes x inference of one chunk"),
                    family_max_channels=args.family_max_channels or None,
                    scorecam_max_channels=args.scorecam_max_channels or None)
    if part == "topk":
        return dict(common, model="ResNet50", k=args.top_k, batches=args.topk_batches, xla=False)
    if part == "aug":
        return dict(common, models=args.models, batch=args.methods_batch, xla=False,
                    floor="Grad-CAM on a batch copies x larger (one step)")
    return dict(common, models=args.maxchannels_models, images=args.correlation_images,
                images_from="tf_gradcam.data.make_shapes (seed 3)", xla=False,
                timing=("per image, from one call on all the images (exact: one call; "
                        "max_channels: median of repeats)"),
                correlation="Pearson of each image's heatmap with exact Score-CAM's")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, help="gradcam part (1 32)")
    parser.add_argument("--methods", nargs="+", default=["all"],
                        help="methods part: method names, or 'all' (default) for tfg.METHODS")
    parser.add_argument("--methods-batch", type=int, help="methods and aug parts (8)")
    parser.add_argument("--family-max-channels", type=int,
                        help="max_channels of SS-CAM and IS-CAM in the methods part (64; 0: "
                             "exact)")
    parser.add_argument("--scorecam-max-channels", type=int,
                        help="max_channels of Score-CAM in the methods part (0: exact)")
    parser.add_argument("--xla", choices=["off", "on", "both"], default="both",
                        help="gradcam part")
    parser.add_argument("--repeats", type=int, help="timed calls per figure (3)")
    parser.add_argument("--size", type=int, help="input height and width (224)")
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the keras-io eager recipe")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--topk-batches", nargs="+", type=int, help="topk part (8 32)")
    parser.add_argument("--max-channels", nargs="+", type=int, help="maxchannels part (64 256)")
    parser.add_argument("--maxchannels-models", nargs="+", default=["mobilenetv2"],
                        choices=list(MODELS))
    parser.add_argument("--correlation-images", type=int, help="maxchannels part (8)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: tiny sizes, 1 repeat; writes results/<name>.quick.json")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for part in args.parts:
        print(f"# {part}", flush=True)
        record = Record(RECORDS[part], quick=args.quick, script="benchmarks/bench_methods.py",
                        part=part, **setup_of(part, args))
        PART_FUNCS[part](args, record)
        print("wrote", record.save(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
