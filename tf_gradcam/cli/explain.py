"""``tf-gradcam explain MODEL IMAGE...``: one overlay PNG per image."""

from __future__ import annotations

import argparse
import os
from typing import Sequence

from tf_gradcam.cli.common import (
    EXIT_OK, CLIError, load_model, one_line, require_file,
)


def add_parser(sub) -> None:
    explain = sub.add_parser(
        "explain",
        help="explain images with a saved .keras model and write overlays",
        description="Load a .keras model and images, explain each image and write one "
        "overlay PNG per image. Prints: image path, target class, score, overlay path.",
    )
    explain.add_argument("model", metavar="MODEL", help="a model saved with model.save('x.keras')")
    explain.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG, ...)")
    explain.add_argument("--layer", default=None,
                         help="layer name or 'outer/inner' path (default: the last spatial layer; "
                         "see 'tf-gradcam layers MODEL')")
    explain.add_argument("--method", default="gradcam", help="method name (default: %(default)s)")
    explain.add_argument("--target", type=int, default=None,
                         help="class index to explain for every image (default: each top class)")
    explain.add_argument("--score", choices=("logits", "probabilities"), default=None,
                         help="explain the pre-softmax score or the model's output "
                         "(default: the method's default, logits)")
    explain.add_argument("--out", default="tf_gradcam_out",
                         help="output directory (default: %(default)s)")
    explain.add_argument("--alpha", type=float, default=0.4,
                         help="heatmap opacity in [0, 1] (default: %(default)s)")
    explain.add_argument("--colormap", default="jet",
                         help="matplotlib colormap (default: %(default)s)")
    explain.add_argument("--raw-pixels", action="store_true",
                         help="feed pixel values in [0, 255] instead of scaling to [0, 1] "
                         "(for models that rescale or preprocess inside)")


def _read_images(paths: Sequence[str], channels: int):
    """RGB (or grey) uint8 images as loaded, before any resizing."""
    import cv2

    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    images = []
    for path in paths:
        img = cv2.imread(path, flag)
        if img is None:
            raise CLIError(f"could not read image {path} (not an image OpenCV can decode)")
        if channels == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        images.append(img)
    return images


def _output_names(paths: Sequence[str], method: str) -> list[str]:
    """``<stem>_<method>.png`` per input; inputs that share a stem get a numeric suffix."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    seen: dict[str, int] = {}
    names = []
    for stem in stems:
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        suffix = f"_{count}" if count else ""
        names.append(f"{stem}{suffix}_{method}.png")
    return names


def run(args: argparse.Namespace) -> int:
    # Check everything that needs no TensorFlow first, so mistakes cost no start-up time.
    if not 0.0 <= args.alpha <= 1.0:
        raise CLIError(f"--alpha must be in [0, 1], got {args.alpha}")
    require_file(args.model, "model file")
    for path in args.images:
        require_file(path, "image")
    from tf_gradcam.render.overlay import get_colormap

    try:
        get_colormap(args.colormap)
    except ValueError as exc:
        raise CLIError(str(exc)) from None

    model = load_model(args.model)
    import cv2
    import numpy as np
    import tensorflow as tf

    import tf_gradcam as tfg
    from tf_gradcam.render import overlay

    try:
        method_cls = tfg.get_method(args.method)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if len(model.inputs) != 1:
        raise CLIError(
            f"explain needs a model with one input, {args.model} has {len(model.inputs)}"
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise CLIError(
            f"explain works on image models with input [N, H, W, 1 or 3]; {args.model} takes "
            f"{list(shape)}. Use the Python API (tfg.explain) for other inputs."
        )
    _, height, width, channels = shape
    originals = _read_images(args.images, channels)
    if height is None or width is None:
        # A model that accepts any size still needs one batch of equal sizes.
        height, width = originals[0].shape[:2]
    resized = []
    for img in originals:
        if img.shape[:2] != (height, width):
            shrinking = img.shape[0] > height or img.shape[1] > width
            img = cv2.resize(img, (width, height),
                             interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        resized.append(img.reshape(height, width, channels))
    batch = np.stack(resized).astype(np.float32)
    if not args.raw_pixels:
        batch /= 255.0

    options = {} if args.score is None else {"score": args.score}
    try:
        result = tfg.explain(model, batch, args.target, method=method_cls.name, layer=args.layer,
                             **options)
    except (ValueError, TypeError, tf.errors.OpError) as exc:  # unknown layer, bad target, ...
        raise CLIError(one_line(exc)) from None

    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create output directory {args.out}: {one_line(exc)}") from None
    for path, name, original, heat, target, score in zip(
        args.images, _output_names(args.images, method_cls.name), originals,
        result.heatmaps, result.targets, result.scores,
    ):
        # Draw on the image as loaded (full resolution); overlay resizes the heatmap.
        picture = overlay(original, heat, colormap=args.colormap, alpha=args.alpha)
        out_path = os.path.join(args.out, name)
        if not cv2.imwrite(out_path, np.ascontiguousarray(picture[..., ::-1])):
            raise CLIError(f"could not write {out_path}")
        print(f"{path}\ttarget={int(target)}\tscore={float(score):.4f}\t{out_path}")
    return EXIT_OK
