"""Grad-CAM on a ViT-S/16-sized transformer at 224x224, as a ratio to compiled inference.

    python benchmarks/bench_vit.py [--repeats 3] [--batches 1 32]
    python benchmarks/bench_vit.py --quick      # smoke test: batches 1 and 2, one repeat

The model is keras-hub's ViTImageClassifier with ViT-S/16's shape (12 blocks, width 384,
6 heads, MLP 1536, patch 16: 1 + 14 * 14 tokens), random weights; without keras-hub an
equivalent functional ViT is built by hand. ``layer=None`` explains the input of the last
block (the class-token trap avoided), so the floor is one forward pass plus the backward pass
from the score through that block. Writes ``benchmarks/results/vit.json`` (``--quick``:
``vit.quick.json``, which neither git nor ``benchmarks/report.py`` reads). The calls are
interleaved and the median of the repeats kept.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_gradcam as tfg  # noqa: E402
from _record import Record, median_times  # noqa: E402

L = keras.layers


def hub_vit():
    import keras_hub

    backbone = keras_hub.models.ViTBackbone(
        image_shape=(224, 224, 3), patch_size=16, num_layers=12, num_heads=6, hidden_dim=384,
        mlp_dim=1536)
    return keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=1000), "keras-hub"


def hand_vit():
    inp = keras.Input((224, 224, 3))
    x = L.Reshape((196, 384))(L.Conv2D(384, 16, strides=16)(inp))
    cls = L.Dense(384, use_bias=False)(keras.ops.ones_like(x[:, :1, :1]))  # a learned token
    x = keras.ops.concatenate([cls, x], axis=1)
    for _ in range(12):
        h = L.LayerNormalization()(x)
        x = x + L.MultiHeadAttention(6, 64)(h, h)
        h = L.LayerNormalization()(x)
        x = x + L.Dense(384)(L.Dense(1536, activation="gelu")(h))
    x = L.LayerNormalization()(x)[:, 0]
    return keras.Model(inp, L.Dense(1000)(x)), "hand-built"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", nargs="+", type=int, help="(1 32)")
    parser.add_argument("--repeats", type=int, help="(3)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: batches 1 and 2, one repeat (results/vit.quick.json)")
    args = parser.parse_args(argv)
    if args.batches is None:
        args.batches = [1, 2] if args.quick else [1, 32]
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    keras.utils.set_random_seed(0)
    try:
        model, source = hub_vit()
    except ImportError:
        model, source = hand_vit()
    explainer = tfg.GradCAM(model)
    record = Record("vit", quick=args.quick, script="benchmarks/bench_vit.py",
                    model=f"ViT-S/16 ({source}), 224x224, random weights",
                    target=explainer.layer_names, repeats=args.repeats, xla=False,
                    timing="median, calls interleaved",
                    inference="tf.function(model) on the same batch, copied to NumPy")
    infer = tf.function(lambda t: model(t, training=False))
    rng = np.random.default_rng(0)
    for batch in args.batches:
        x = rng.random((batch, 224, 224, 3), dtype=np.float32)
        xt = tf.constant(x)
        infer(xt).numpy()
        explainer(x, batch_size=batch)  # trace and compile outside the timing
        t = median_times({"inference": lambda: infer(xt).numpy(),
                          "gradcam": lambda: explainer(x, batch_size=batch)}, args.repeats)
        record.add(batch=batch, inference_ms=round(t["inference"] * 1e3, 3),
                   gradcam_ms=round(t["gradcam"] * 1e3, 3), ratio=t["gradcam"] / t["inference"])
    print("wrote", record.save())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
