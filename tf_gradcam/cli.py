"""The ``tf-gradcam`` command: ``demo``, ``explain`` and ``layers``.

TensorFlow is imported inside the subcommands, after the arguments and files have been
checked, so mistakes are reported at once. Expected failures (a missing file, a model that
does not load, an unknown layer) print one ``tf-gradcam: error: ...`` line on stderr and
return exit code 2, like argparse's own usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 2


class CLIError(Exception):
    """An expected failure, reported as one line without a traceback."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tf-gradcam",
        description="Grad-CAM and the CAM family for Keras 3 / TensorFlow models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser(
        "demo",
        help="train a small CNN on generated shapes (offline) and write explanations",
        description="Train a small CNN on generated shape images (no download), explain "
        "held-out images with Grad-CAM and write overlays, a summary figure and the model.",
    )
    demo.add_argument("--out", default="tf_gradcam_demo",
                      help="output directory (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=5,
                      help="training epochs (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--n-train", type=int, default=3000,
                      help="training images (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="print nothing")

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

    layers = sub.add_parser(
        "layers",
        help="list the layers that can be explained, last first",
        description="List the layers whose output has spatial axes, last first; nested "
        "layers are shown as 'inner_model/layer'.",
    )
    layers.add_argument("model", metavar="MODEL", help="a model saved with model.save('x.keras')")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    0 on success, 2 on a usage error or an expected failure (message on stderr).
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help (0) and usage errors (2): return instead of exiting
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    handlers = {"demo": _cmd_demo, "explain": _cmd_explain, "layers": _cmd_layers}
    try:
        return handlers[args.command](args)
    except CLIError as exc:
        print(f"tf-gradcam: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tf-gradcam: interrupted", file=sys.stderr)
        return 130


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) drowns the CLI's output;
    # respect the user's own setting if there is one.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _require_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise CLIError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise CLIError(f"{what} is a directory, not a file: {path}")


def _load_model(path: str):
    _require_file(path, "model file")
    _quiet_tensorflow()
    import keras

    try:
        # compile=False: no optimizer or loss is needed to explain, and custom losses
        # would otherwise make loading fail.
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same here
        raise CLIError(f"could not load model {path}: {_one_line(exc)}") from None


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    if args.n_train < 1:
        raise CLIError(f"--n-train must be >= 1, got {args.n_train}")
    _quiet_tensorflow()
    from tf_gradcam.demo import run_demo

    try:
        run_demo(args.out, epochs=args.epochs, seed=args.seed, n_train=args.n_train,
                 verbose=0 if args.quiet else 1)
    except OSError as exc:
        raise CLIError(_one_line(exc)) from None
    return EXIT_OK


def _cmd_layers(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    import tf_gradcam as tfg

    try:
        names = tfg.list_layers(model)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"cannot list layers of {args.model}: {_one_line(exc)}") from None
    if not names:
        raise CLIError(f"{args.model} has no layer with spatial output to explain")
    for name in names:
        print(name)
    return EXIT_OK


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


def _cmd_explain(args: argparse.Namespace) -> int:
    # Check everything that needs no TensorFlow first, so mistakes cost no start-up time.
    if not 0.0 <= args.alpha <= 1.0:
        raise CLIError(f"--alpha must be in [0, 1], got {args.alpha}")
    _require_file(args.model, "model file")
    for path in args.images:
        _require_file(path, "image")
    from tf_gradcam.render.overlay import get_colormap

    try:
        get_colormap(args.colormap)
    except ValueError as exc:
        raise CLIError(str(exc)) from None

    model = _load_model(args.model)
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
        raise CLIError(_one_line(exc)) from None

    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create output directory {args.out}: {_one_line(exc)}") from None
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


if __name__ == "__main__":  # python -m tf_gradcam.cli
    sys.exit(main())
