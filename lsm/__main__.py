"""The ``lsm`` command (also ``python -m lsm``): ``demo``, ``info`` and ``bench``."""

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ._demo import demo

DESCRIPTION = "Fast, exact log-sum-exp kernels for NumPy: examples, installation facts, benchmarks."


def _run_demo(args: argparse.Namespace) -> int:
    demo()
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from ._info import environment, format_environment

    env = environment()
    print(json.dumps(env, indent=2) if args.json else format_environment(env))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lsm`` command and its subcommands."""
    parser = argparse.ArgumentParser(prog="lsm", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="{demo,info,bench}")

    demo_parser = commands.add_parser(
        "demo",
        help="show log(softmax(x)) underflowing next to log_softmax(x)",
        description="Print the seed example: softmax underflows to 0, so log(softmax(x)) is -inf "
        "where log_softmax(x) keeps the finite log-probability.",
    )
    demo_parser.set_defaults(handler=_run_demo)

    info_parser = commands.add_parser(
        "info",
        help="versions, backends, threading, GPU and cache of this installation",
        description="Report lsm's version and location, Python, CPU, NumPy and Numba versions, "
        "Numba's threading layer and thread count, the on-disk kernel cache, whether a GPU was "
        "found, which backends are available, and which optional packages are installed.",
    )
    info_parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    info_parser.set_defaults(handler=_run_info)

    # Listed here for `lsm --help` only: main hands `lsm bench ...` to lsm.bench.cli, which parses
    # its own options, so that demo and info never import lsm.bench.
    commands.add_parser(
        "bench", help="benchmark sweep: throughput against a memory copy and peers, JSON + table + plot"
    )
    return parser


def _run(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:
        from .bench.cli import main as bench

        status: int = bench(argv[1:])
        return status
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain ``lsm``: the help, as ``lsm --help`` prints it
        parser.print_help()
        return 0
    handled: int = args.handler(args)
    return handled


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lsm`` command with the arguments ``argv`` (default: the process's); return its
    exit status.

    A reader that stops early (``lsm info --json | head -1``) ends the command quietly with
    status 1, as Python's own tools do, instead of a ``BrokenPipeError`` traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        status = _run(argv)
        sys.stdout.flush()  # a closed pipe fails here, inside the try, not at interpreter exit
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at devnull so that flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
