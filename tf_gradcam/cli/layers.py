"""``tf-gradcam layers MODEL``: the layers that can be explained, last first, with their shapes."""

from __future__ import annotations

import argparse

from tf_gradcam.cli.common import (
    EXIT_OK, CLIError, Warnings, add_common_options, load_model, one_line,
)


def add_parser(sub) -> None:
    layers = sub.add_parser(
        "layers",
        help="list the layers that can be explained, last first, with their output shapes",
        description="List the layers whose output has spatial axes, last first, each with its "
        "output shape (batch first, None: any size); nested layers are shown as "
        "'inner_model/layer'. Any name printed is a valid --layer for 'tf-gradcam explain'.",
    )
    layers.add_argument("model", metavar="MODEL", help="a model saved with model.save('x.keras')")
    add_common_options(layers)


def _shape(shape) -> str:
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def run(args: argparse.Namespace) -> int:
    with Warnings(args.verbose):
        model = load_model(args.model, args.custom_objects, args.verbose)
        import tf_gradcam as tfg

        try:
            found = tfg.list_layers(model, details=True)
        except (TypeError, ValueError) as exc:
            raise CLIError(f"cannot list layers of {args.model}: {one_line(exc)}") from None
    if not found:
        raise CLIError(f"{args.model} has no layer with spatial output to explain")
    width = max(len(name) for name, _ in found)
    for name, shape in found:
        print(f"{name:<{width}}  {_shape(shape)}")
    return EXIT_OK
