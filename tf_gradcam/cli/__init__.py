"""The ``tf-gradcam`` command: ``demo``, ``explain``, ``layers`` and ``evaluate``, one module each.

TensorFlow is imported inside the subcommands, after the arguments and files have been
checked, so mistakes are reported at once, and quietly: its start-up lines (CUDA probing,
oneDNN, absl) are hidden unless ``--verbose``. Expected failures (a missing file, a model that
does not load, an unknown layer) print one ``tf-gradcam: error: ...`` line on stderr and
return exit code 2, like argparse's own usage errors; warnings are ``tf-gradcam: warning: ...``
lines. Exit code 1: the run went on past a bad input (an unreadable image) and did the rest.

A subcommand is a module here with ``add_parser(subparsers)`` and ``run(args) -> int``,
listed in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from tf_gradcam.cli.common import EXIT_ERROR, CLIError

__all__ = ["main"]

#: Subcommand name -> module under tf_gradcam.cli.
COMMANDS = {"demo": "demo", "explain": "explain", "layers": "layers", "evaluate": "evaluate"}


def _build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="tf-gradcam",
        description="Grad-CAM and the CAM family for Keras 3 / TensorFlow models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    modules = {}
    for name, module in COMMANDS.items():
        modules[name] = importlib.import_module(f"tf_gradcam.cli.{module}")
        modules[name].add_parser(sub)
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    0 on success, 1 when some inputs were skipped (each one warned about), 2 on a usage error
    or an expected failure (message on stderr).
    """
    parser, modules = _build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help (0) and usage errors (2): return instead of exiting
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        return modules[args.command].run(args)
    except CLIError as exc:
        print(f"tf-gradcam: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tf-gradcam: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # python -m tf_gradcam.cli
    sys.exit(main())
