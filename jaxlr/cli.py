"""The ``jaxlr`` command: ``list``, ``plot``, ``demo`` (the main job), ``recommend``."""

from __future__ import annotations

import argparse
import os
import sys


def _list(args) -> int:
    from jaxlr import compat, schedules

    # native schedules, then the PyTorch, Keras and Hugging Face names (compat), each with a
    # valid expression (``jaxlr plot`` takes either)
    entries = {**schedules.catalog(), **compat.catalog()}
    width = max(24, *(len(name) for name in entries))
    for name, s in entries.items():
        print(f"{name:{width}s} {s!r}")
    return 0


def _plot(args) -> int:
    from jaxlr import compat, plot, schedules

    items = {e: schedules.parse(e, lookup=compat.lookup) for e in args.expression}
    path = _output_path(args.output)
    plot.schedules(items, total_steps=args.steps, log=args.log, path=path)
    print(path)
    return 0


def _output_path(output: str) -> str:
    """The file ``jaxlr plot`` writes: ``.png`` appended when no extension is given, a known
    image format, in a folder that exists."""
    import matplotlib.pyplot as plt

    root, ext = os.path.splitext(output)
    name = os.path.basename(output)
    if not name or name in (".", "..") or os.path.isdir(output) or not root:
        raise _UsageError(f"--output {output!r}: give an image file name, e.g. lr.png")
    if os.path.exists(output) and not os.path.isfile(output):
        raise _UsageError(f"--output {output!r} exists and is not a regular file")
    if not ext:
        output, ext = output + ".png", ".png"
    formats = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    if ext[1:].lower() not in formats:
        raise _UsageError(
            f"--output {output!r}: unknown image format {ext!r}; use one of "
            f"{sorted('.' + f for f in formats)}"
        )
    _check_folder(os.path.dirname(os.path.abspath(output)), f"--output {output!r}")
    return output


def _check_folder(folder: str, what: str) -> None:
    """A folder that exists or can be made: no file on the way."""
    path = folder
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    if path and not os.path.isdir(path):
        raise _UsageError(f"{what}: {path!r} is a file, not a folder")
    if os.path.isdir(folder) and not os.access(folder, os.W_OK):
        raise _UsageError(f"{what}: the folder {folder!r} is not writable")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


class _UsageError(ValueError):
    """A command-line mistake: printed as one line, exit status 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _demo(args) -> int:
    from jaxlr import demo

    if args.out is not None:
        _check_folder(os.path.abspath(args.out), f"--out {args.out!r}")
    demo.run(out_dir=args.out, quick=args.quick)  # prints its table and where it wrote
    return 0


def _recommend(args) -> int:
    from jaxlr.recommend import (
        format_lr_recommendation,
        format_recommendation,
        recommend,
        recommend_lr,
    )

    scale = dict(N=args.N, D=args.D, B=args.B, C=args.C)
    if args.fit is not None or any(v is not None for v in scale.values()):
        if args.peak is not None:
            raise _UsageError("--peak and a scaling law (--fit, -N/-D/-B/-C) both set the LR")
        if args.fit is not None and not os.path.isfile(args.fit):
            raise _UsageError(f"--fit {args.fit!r}: no such file (save one with fit.save(path))")
        r = recommend_lr(
            fit=args.fit,
            **scale,
            preset=args.preset,
            family=args.family,
            total_steps=args.steps,
            force=args.force,
        )
        print(format_lr_recommendation(r), end="")
        return 0
    r = recommend(
        task=args.task,
        scale=args.scale,
        data=args.data,
        total_steps=args.steps,
        peak_value=args.peak,
    )
    print(format_recommendation(r), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxlr`` command.

    Examples:
        >>> from jaxlr.cli import main
        >>> main(["list"])  # doctest: +ELLIPSIS
        constant...constant(value=0.001)
        ...
        0
    """
    parser = _Parser(prog="jaxlr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser(
        "list", help="print every catalog schedule (native, then torch / keras / transformers)"
    )
    p.set_defaults(fn=_list)

    p = sub.add_parser("plot", help="plot schedules given as expressions")
    p.add_argument(
        "expression",
        nargs="+",
        help='e.g. "warmup_cosine(peak_value=1e-3, warmup_steps=100, total_steps=1000)"',
    )
    p.add_argument(
        "-o", "--output", default="lr.png", help="image file (.png when no extension is given)"
    )
    p.add_argument("--steps", type=_positive_int, default=1000)
    p.add_argument("--log", action="store_true")
    p.set_defaults(fn=_plot)

    p = sub.add_parser("demo", help="the main job: a vectorized LR sweep with a report")
    p.add_argument(
        "--out", default=None, help="output folder (default: a new jaxlr-demo-<date>-<time> folder)"
    )
    p.add_argument("--quick", action="store_true", help="a seconds-long version for tests")
    p.set_defaults(fn=_demo)

    p = sub.add_parser("recommend", help="suggest a schedule for a task x scale x data regime")
    p.add_argument(
        "--task", default="classification", help="classification | generation | reinforcement"
    )
    p.add_argument("--scale", default="small", help="small | large")
    p.add_argument("--data", default="static", help="static | continual")
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="planned optimizer steps (default: assume 10000 and say so)",
    )
    p.add_argument("--peak", type=float, default=None, help="peak LR (default: the recipe's)")
    law = p.add_argument_group(
        "the peak LR from a scaling law (jaxlr.scaling): a saved fit, or a published preset"
    )
    law.add_argument("--fit", default=None, help="a fit saved by jaxlr.scaling.ScalingFit.save")
    law.add_argument("-N", "--params", dest="N", type=float, default=None, help="model size")
    law.add_argument("-D", "--tokens", dest="D", type=float, default=None, help="data (tokens)")
    law.add_argument("-B", "--batch", dest="B", type=float, default=None, help="batch size")
    law.add_argument("-C", "--compute", dest="C", type=float, default=None, help="FLOPs")
    law.add_argument("--preset", default=None, help="step_law | deepseek_llm (without --fit)")
    law.add_argument(
        "--family", default="warmup_cosine", help="warmup_cosine | wsd | cosine | constant"
    )
    law.add_argument("--force", action="store_true", help="extrapolate a fit past 8x")
    p.set_defaults(fn=_recommend)

    args = parser.parse_args(argv)  # argparse's own errors: one usage line, exit status 2
    try:
        return args.fn(args)
    except ValueError as err:  # bad input, named by the library or by _UsageError
        print(f"jaxlr {args.command}: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file that cannot be written
        print(
            f"jaxlr {args.command}: cannot write {err.filename or ''}: {err.strerror or err}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
