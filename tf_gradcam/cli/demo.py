"""``tf-gradcam demo``: train the shapes CNN offline and write its explanations."""

from __future__ import annotations

import argparse

from tf_gradcam.cli.common import (
    EXIT_OK, CLIError, Warnings, add_common_options, import_tensorflow, one_line,
)


def add_parser(sub) -> None:
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
    add_common_options(demo, custom_objects=False)


def run(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    if args.n_train < 1:
        raise CLIError(f"--n-train must be >= 1, got {args.n_train}")
    with Warnings(args.verbose):
        import_tensorflow(args.verbose)
        from tf_gradcam.demo import run_demo

        try:
            run_demo(args.out, epochs=args.epochs, seed=args.seed, n_train=args.n_train,
                     verbose=0 if args.quiet else 1)
        except OSError as exc:
            raise CLIError(one_line(exc)) from None
    return EXIT_OK
