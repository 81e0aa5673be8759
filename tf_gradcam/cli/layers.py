"""``tf-gradcam layers MODEL``: the layers that can be explained, last first."""

from __future__ import annotations

import argparse

from tf_gradcam.cli.common import EXIT_OK, CLIError, load_model, one_line


def add_parser(sub) -> None:
    layers = sub.add_parser(
        "layers",
        help="list the layers that can be explained, last first",
        description="List the layers whose output has spatial axes, last first; nested "
        "layers are shown as 'inner_model/layer'.",
    )
    layers.add_argument("model", metavar="MODEL", help="a model saved with model.save('x.keras')")


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    import tf_gradcam as tfg

    try:
        names = tfg.list_layers(model)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"cannot list layers of {args.model}: {one_line(exc)}") from None
    if not names:
        raise CLIError(f"{args.model} has no layer with spatial output to explain")
    for name in names:
        print(name)
    return EXIT_OK
