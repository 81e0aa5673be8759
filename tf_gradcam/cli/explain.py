"""``tf-gradcam explain MODEL IMAGE...``: one overlay PNG per image.

IMAGE may be a file, a directory (its image files, sorted) or a glob pattern (``"imgs/*.jpg"``,
``"data/**/*.png"``), quoted so that the shell leaves it alone. An image that cannot be decoded
is skipped with a warning; the others are explained, and the exit code is then 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import Sequence

from tf_gradcam.cli.common import (
    EXIT_OK, EXIT_PARTIAL, CLIError, Warnings, add_common_options, expand_images, load_model,
    one_line, require_file, warn,
)

def add_parser(sub) -> None:
    explain = sub.add_parser(
        "explain",
        help="explain images with a saved .keras model and write overlays",
        description="Load a .keras model and images, explain each image and write one "
        "overlay PNG per image. Prints one line per image, tab-separated: the image path, "
        "layer=<explained layer>, target=<class index>, class=<name> (with --class-names), "
        "score=<the score explained, in full float32 precision>, the overlay path. An image "
        "that cannot be read is skipped with a warning, and the exit code is then 1.",
    )
    explain.add_argument("model", metavar="MODEL", help="a model saved with model.save('x.keras')")
    explain.add_argument("images", metavar="IMAGE", nargs="+",
                         help="image files, directories (their image files) or quoted glob "
                         "patterns such as 'photos/*.jpg' ('**' descends into folders)")
    explain.add_argument("--layer", default=None,
                         help="layer name or 'outer/inner' path (default: the last spatial layer; "
                         "see 'tf-gradcam layers MODEL')")
    explain.add_argument("--method", default="gradcam", help="method name (default: %(default)s)")
    explain.add_argument("--target", default=None,
                         help="class to explain for every image: an index, or a name from "
                         "--class-names (default: each image's top class)")
    explain.add_argument("--class-names", default=None, metavar="FILE",
                         help="a text file with one class name per line, line i naming class i; "
                         "the names are printed beside the class indices")
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
    explain.add_argument("--batch-size", type=int, default=32,
                         help="images read and explained at a time (default: %(default)s)")
    add_common_options(explain)


# ------------------------------------------------------------------ arguments
def read_class_names(path: str) -> list[str]:
    require_file(path, "class names file")
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f.read().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"could not read class names {path}: {one_line(exc)}") from None
    while names and not names[-1]:
        names.pop()  # a trailing blank line names no class
    if not names:
        raise CLIError(f"class names file {path} is empty (one name per line)")
    return names


def _target(text: str | None, names: list[str] | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    if names is None:
        raise CLIError(f"--target {text!r} is not a class index (pass --class-names to name "
                       "classes)")
    if text not in names:
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise CLIError(f"--target {text!r} is not one of the class names ({shown})")
    return names.index(text)


# ------------------------------------------------------------------ images
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


def _score_text(score) -> str:
    """The score in full float32 precision: the shortest text that reads back as the same
    float32 (``3.2671893``, ``1.5e-08``), never rounded to ``0.0000``."""
    import numpy as np

    return str(np.float32(score))


# ------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> int:
    # Check everything that needs no TensorFlow first, so mistakes cost no start-up time.
    if not 0.0 <= args.alpha <= 1.0:
        raise CLIError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    require_file(args.model, "model file")
    paths = expand_images(args.images)
    names = read_class_names(args.class_names) if args.class_names else None
    target = _target(args.target, names)
    from tf_gradcam.render.overlay import get_colormap

    try:
        get_colormap(args.colormap)
    except ValueError as exc:
        raise CLIError(str(exc)) from None

    with Warnings(args.verbose):
        return _explain(args, paths, names, target)


def _explain(args: argparse.Namespace, paths: list[str], names: list[str] | None,
             target: int | None) -> int:
    model = load_model(args.model, args.custom_objects, args.verbose)
    import cv2
    import numpy as np
    import tensorflow as tf

    import tf_gradcam as tfg
    from tf_gradcam.data.images import fit_image, read_image
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
    options = {} if args.score is None else {"score": args.score}
    try:
        explainer = method_cls(model, args.layer, **options)
    except (ValueError, TypeError) as exc:  # unknown layer, option the method lacks, ...
        raise CLIError(one_line(exc)) from None
    classes = explainer.num_classes
    if names is not None and classes is not None and classes != len(names):
        warn(f"{args.class_names} names {len(names)} classes, but the model has {classes}")
    if target is not None and classes is not None and not 0 <= target < classes:
        raise CLIError(f"--target {target} is not a class of the model (0 to {classes - 1})")
    pixels = explainer.checker.expect[0].pixels
    if pixels is not None and not args.raw_pixels:
        layer, what = pixels
        print(f"tf-gradcam: hint: the model rescales its input inside (layer {layer!r}: {what}), "
              "so it expects pixel values in [0, 255]; pass --raw-pixels to feed them as read "
              "(without it, pixels are scaled to [0, 1] first)", file=sys.stderr)

    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create output directory {args.out}: {one_line(exc)}") from None
    outputs = _output_names(paths, method_cls.name)
    layer_name = explainer.layer_names or "(input)"
    skipped = []
    for start in range(0, len(paths), args.batch_size):
        chunk, originals = [], []
        for index in range(start, min(start + args.batch_size, len(paths))):
            img = read_image(paths[index], channels)
            if img is None:
                warn(f"could not read image {paths[index]} (not an image OpenCV can decode); "
                     "skipped")
                skipped.append(paths[index])
                continue
            chunk.append(index)
            originals.append(img)
        if not chunk:
            continue
        if height is None or width is None:
            # A model that accepts any size still needs one batch of equal sizes: the first
            # image read sets it.
            height, width = originals[0].shape[:2]
        batch = np.stack([fit_image(img, height, width, channels)
                          for img in originals]).astype(np.float32)
        if not args.raw_pixels:
            batch /= 255.0
        try:
            with _without_the_range_warning(pixels is not None and not args.raw_pixels):
                result = explainer(batch, target)
        except (ValueError, TypeError, tf.errors.OpError) as exc:  # bad target, ...
            raise CLIError(one_line(exc)) from None
        for index, original, heat, cls, score in zip(
                chunk, originals, result.heatmaps, result.targets, result.scores):
            # Draw on the image as loaded (full resolution); overlay resizes the heatmap.
            picture = overlay(original, heat, colormap=args.colormap, alpha=args.alpha)
            out_path = os.path.join(args.out, outputs[index])
            if not cv2.imwrite(out_path, np.ascontiguousarray(picture[..., ::-1])):
                raise CLIError(f"could not write {out_path}")
            fields = [paths[index], f"layer={layer_name}", f"target={int(cls)}"]
            if names is not None:
                fields.append(f"class={names[int(cls)] if 0 <= int(cls) < len(names) else '?'}")
            fields += [f"score={_score_text(score)}", out_path]
            print("\t".join(fields), flush=True)
    if len(skipped) == len(paths):
        raise CLIError(f"could not read any of the {len(paths)} image(s): nothing explained")
    if skipped:
        warn(f"{len(skipped)} of {len(paths)} images could not be read and were skipped")
        return EXIT_PARTIAL
    return EXIT_OK


@contextlib.contextmanager
def _without_the_range_warning(active: bool):
    """Hide the engine's "rescales input inside" warning once the CLI has printed its own hint,
    which names the flag to pass."""
    with warnings.catch_warnings():
        if active:
            warnings.filterwarnings("ignore", message=r"Model .* rescales input")
        yield
