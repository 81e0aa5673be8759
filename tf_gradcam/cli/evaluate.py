"""``tf-gradcam evaluate MODEL IMAGES...``: every method against every metric, as a table."""

from __future__ import annotations

import argparse
import os

from tf_gradcam.cli.common import (
    EXIT_OK, CLIError, add_common_options, expand_images, load_model, one_line,
)


def add_parser(sub) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        help="score saliency methods on a saved model and images (deletion, ROAD, ...)",
        description="Load a .keras model and images, explain every image with each method, "
        "score the maps with each metric and write table.csv, table.md (mean and 95 %% "
        "confidence interval over images per method and metric), curves.png and maps.png. "
        "Prints the Markdown table.",
    )
    evaluate.add_argument("model", metavar="MODEL",
                          help="a model saved with model.save('x.keras')")
    evaluate.add_argument("images", metavar="IMAGES", nargs="+",
                          help="image files, directories (their image files) or quoted glob "
                          "patterns")
    evaluate.add_argument("--methods", nargs="+", default=["gradcam"],
                          help="method names, or 'all' (default: %(default)s; commas work too)")
    evaluate.add_argument("--metrics", nargs="+", default=None,
                          help="metric names, or 'all' (default: deletion, insertion, "
                          "average_drop, increase_in_confidence, road, mu_fidelity, "
                          "sparseness, complexity; also max_sensitivity, sanity)")
    evaluate.add_argument("--layer", default=None,
                          help="layer name or path (default: each method's automatic choice)")
    evaluate.add_argument("--target", type=int, default=None,
                          help="class index to explain for every image (default: each top class)")
    evaluate.add_argument("--max-images", type=int, default=None,
                          help="evaluate only the first N images")
    evaluate.add_argument("--batch-size", type=int, default=32,
                          help="images per model call (default: %(default)s)")
    evaluate.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    evaluate.add_argument("--out", default="tf_gradcam_eval",
                          help="output directory (default: %(default)s)")
    evaluate.add_argument("--raw-pixels", action="store_true",
                          help="feed pixel values in [0, 255] instead of scaling to [0, 1]")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    add_common_options(evaluate)


def _names(values) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def run(args: argparse.Namespace) -> int:
    if args.max_images is not None and args.max_images < 1:
        raise CLIError(f"--max-images must be >= 1, got {args.max_images}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
    paths = expand_images(args.images)
    if args.max_images is not None:
        paths = paths[: args.max_images]
    methods = _names(args.methods)
    metrics = _names(args.metrics) if args.metrics is not None else None
    from tf_gradcam.evaluation.core import METRICS

    for name in metrics or []:
        if name != "all" and name not in METRICS:
            raise CLIError(f"unknown metric {name!r}; choose from {', '.join(METRICS)} or all")

    model = load_model(args.model, args.custom_objects, args.verbose)
    import tensorflow as tf

    from tf_gradcam.evaluation import read_images
    from tf_gradcam.evaluation import run as run_all
    from tf_gradcam.methods import get_method

    if methods != ["all"]:
        for name in methods:
            try:
                get_method(name)
            except ValueError as exc:
                raise CLIError(str(exc)) from None
    try:
        images = read_images(paths, model, raw_pixels=args.raw_pixels)
        result = run_all(model, images, "all" if methods == ["all"] else methods,
                         "all" if metrics == ["all"] else metrics, targets=args.target,
                         layer=args.layer, batch_size=args.batch_size, seed=args.seed,
                         verbose=0 if args.quiet else 1)
    except (ValueError, TypeError, tf.errors.OpError) as exc:
        raise CLIError(one_line(exc)) from None
    try:
        written = result.write(args.out)
    except OSError as exc:
        raise CLIError(f"cannot write to {args.out}: {one_line(exc)}") from None
    if not args.quiet:
        with open(written["markdown"], encoding="utf-8") as f:
            print(f.read())
        print("written: " + ", ".join(os.path.relpath(p) for p in written.values()))
    return EXIT_OK
