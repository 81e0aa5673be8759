"""An offline end-to-end demo: train a small CNN on generated shapes, explain it, check it.

``run_demo()`` (or ``tf-gradcam demo``) needs no download and runs in about a minute on two
CPU cores. It

1. draws a training set and a held-out set of one-shape images (:mod:`tf_gradcam.data`),
2. trains :func:`tf_gradcam.data.small_cnn` on the labels alone (no boxes, no masks),
3. explains held-out images with ``tfg.GradCAM(model, "last_conv")``,
4. writes one overlay PNG per explained image and a ``summary.png`` figure,
5. measures held-out accuracy and the pointing share: how often the heatmap's peak lies
   inside the object's box. The network never saw a box, so a high share means the
   explanation finds the object on its own.

It also saves the trained model and the explained inputs, so that the command line can be
tried on them: ``tf-gradcam explain OUT/model.keras OUT/inputs/*.png``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

__all__ = ["run_demo", "pointing_hits"]

# The images are 64 px; PNGs are written 4x larger (nearest-neighbour for the image, the
# heatmap interpolated by overlay) so they can be looked at without zooming.
_PNG_SCALE = 4


def pointing_hits(heatmaps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether each heatmap's maximum lies inside its box.

    Args:
        heatmaps: ``[N, H, W]`` float, at the resolution of the boxes' pixel grid.
        boxes: ``[N, 4]`` int ``(y0, x0, y1, x1)``, start inclusive, end exclusive.

    Returns:
        ``[N] bool``. An all-zero (or all-NaN) map counts as a miss: it points nowhere.
    """
    heat = np.nan_to_num(np.asarray(heatmaps, dtype=np.float32), nan=0.0)
    n = heat.shape[0]
    flat = heat.reshape(n, -1)
    peak = flat.argmax(axis=1)
    ys, xs = np.unravel_index(peak, heat.shape[1:])
    y0, x0, y1, x1 = np.asarray(boxes).T
    inside = (y0 <= ys) & (ys < y1) & (x0 <= xs) & (xs < x1)
    return inside & (flat.max(axis=1) > 0)


def _write_png(path: str, rgb: np.ndarray) -> None:
    import cv2

    # OpenCV writes BGR.
    if not cv2.imwrite(path, np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")


def run_demo(
    out_dir: str = "tf_gradcam_demo",
    *,
    n_train: int = 3000,
    n_test: int = 300,
    epochs: int = 5,
    n_explain: int = 12,
    seed: int = 0,
    verbose: int = 1,
) -> dict[str, Any]:
    """Train, explain and score the shapes demo; write the pictures to ``out_dir``.

    Args:
        out_dir: output directory (created if needed).
        n_train: training images.
        n_test: held-out images used for the accuracy.
        epochs: training epochs.
        n_explain: held-out images explained, drawn as overlays and scored for pointing.
        seed: seeds the data and the training; the same seed gives the same result on the
            same machine.
        verbose: 0 silent, 1 print the results, 2 also the per-epoch training log.

    Returns:
        A dict with ``"accuracy"`` (held-out, float in ``[0, 1]``), ``"pointing"`` (share of
        explained images whose heatmap peak is inside the object's box), ``"overlays"``
        (PNG paths), ``"summary"`` (figure path), ``"model_path"``, ``"inputs"`` (PNG paths
        of the explained images), ``"out_dir"``, ``"class_names"``, ``"train_seconds"`` and
        ``"seconds"`` (whole run).
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train} and {n_test}")
    if not 1 <= n_explain <= n_test:
        raise ValueError(f"n_explain must be in [1, n_test={n_test}], got {n_explain}")
    start = time.perf_counter()

    import tf_gradcam as tfg
    from tf_gradcam.data import make_shapes, train_small_cnn
    from tf_gradcam.render import overlay_batch, plot

    def say(msg: str) -> None:
        if verbose:
            print(msg, flush=True)

    # Two independent streams from one seed, so the held-out images never repeat a
    # training image (seed and seed + 1 would collide across runs with adjacent seeds).
    train_seed, test_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    train = make_shapes(n_train, seed=train_seed)
    test = make_shapes(n_test, seed=test_seed)
    names = train.class_names
    say(f"tf_gradcam demo: {n_train} training / {n_test} held-out images of {', '.join(names)}")

    os.makedirs(out_dir, exist_ok=True)  # a bad --out fails now, not after training
    t0 = time.perf_counter()
    model = train_small_cnn(train, epochs=epochs, seed=seed, verbose=2 if verbose >= 2 else 0)
    train_seconds = time.perf_counter() - t0
    probs = model.predict(test.images, batch_size=256, verbose=0)
    accuracy = float(np.mean(probs.argmax(axis=1) == test.labels))
    say(f"trained in {train_seconds:.1f} s; held-out accuracy {accuracy:.3f}")

    model_path = os.path.join(out_dir, "model.keras")
    model.save(model_path)

    sample = test.subset(slice(0, n_explain))
    explainer = tfg.GradCAM(model, "last_conv")
    result = explainer(sample.images)
    hits = pointing_hits(result.heatmaps, sample.boxes)
    pointing = float(hits.mean())

    big = np.repeat(np.repeat(sample.images, _PNG_SCALE, axis=1), _PNG_SCALE, axis=2)
    overlays = overlay_batch(big, result.heatmaps)
    overlay_paths, input_paths = [], []
    os.makedirs(os.path.join(out_dir, "inputs"), exist_ok=True)
    for i in range(n_explain):
        target = int(result.targets[i])
        truth = names[int(sample.labels[i])]
        label = names[target] if 0 <= target < len(names) else str(target)
        path = os.path.join(out_dir, f"overlay_{i:02d}_{truth}_as_{label}.png")
        _write_png(path, overlays[i])
        overlay_paths.append(path)
        in_path = os.path.join(out_dir, "inputs", f"sample_{i:02d}_{truth}.png")
        _write_png(in_path, np.rint(sample.images[i] * 255).astype(np.uint8))
        input_paths.append(in_path)

    fig = plot(sample.images, result, class_names=names, max_images=min(n_explain, 8))
    summary_path = os.path.join(out_dir, "summary.png")
    fig.savefig(summary_path, dpi=80)

    seconds = time.perf_counter() - start
    for path, hit in zip(overlay_paths, hits):
        say(f"  {path}  {'peak on object' if hit else 'peak off object'}")
    say(f"summary figure: {summary_path}")
    say(f"model: {model_path}  (try: tf-gradcam explain {model_path} "
        f"{os.path.join(out_dir, 'inputs', '*.png')})")
    say(f"held-out accuracy {accuracy:.3f}; pointing (heatmap peak inside the object's box) "
        f"{int(hits.sum())}/{n_explain} = {pointing:.3f}; total {seconds:.1f} s")
    return {
        "accuracy": accuracy,
        "pointing": pointing,
        "overlays": overlay_paths,
        "summary": summary_path,
        "model_path": model_path,
        "inputs": input_paths,
        "out_dir": out_dir,
        "class_names": names,
        "train_seconds": train_seconds,
        "seconds": seconds,
    }
