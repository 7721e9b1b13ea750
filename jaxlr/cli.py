"""The ``jaxlr`` command: ``list``, ``plot``, ``demo`` (the main job), ``recommend``."""

from __future__ import annotations

import argparse
import sys


def _list(args) -> int:
    from jaxlr import schedules

    for name, s in schedules.catalog().items():
        print(f"{name:24s} {s!r}")
    return 0


def _plot(args) -> int:
    from jaxlr import plot, schedules

    try:
        items = {e: schedules.parse(e) for e in args.expression}
    except ValueError as err:
        print(f"jaxlr plot: {err}", file=sys.stderr)
        return 2
    plot.schedules(items, total_steps=args.steps, log=args.log, path=args.output)
    print(args.output)
    return 0


def _demo(args) -> int:
    try:
        from jaxlr import demo
    except ImportError:  # the sweep layer is optional at this layer's level: fall back to a gallery
        demo = None
    if demo is not None and hasattr(demo, "run"):
        demo.run(out_dir=args.out, quick=args.quick)  # prints its table and where it wrote
        return 0
    import os

    from jaxlr import plot

    out = os.path.join(args.out or "jaxlr-out", "gallery.png")
    plot.gallery(out)
    print(f"jaxlr demo: wrote the schedule gallery to {os.path.abspath(out)}")
    return 0


def _recommend(args) -> int:
    from jaxlr.recommend import recommend

    try:
        r = recommend(task=args.task, scale=args.scale, data=args.data, total_steps=args.steps,
                      peak_value=args.peak)
    except ValueError as err:
        print(f"jaxlr recommend: {err}", file=sys.stderr)
        return 2
    print(f"schedule:  jaxlr.schedules.{r.name}  (peak LR {r.peak_value:g})")
    print(f"           {r.schedule!r}")
    print(f"optimizer: optax.{r.optimizer}")
    print("reasons:")
    for reason in r.reasons:
        print(f"  - {reason}")
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
    parser = argparse.ArgumentParser(prog="jaxlr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="print every catalog schedule")
    p.set_defaults(fn=_list)

    p = sub.add_parser("plot", help="plot schedules given as expressions")
    p.add_argument("expression", nargs="+",
                   help='e.g. "warmup_cosine(peak_value=1e-3, warmup_steps=100, total_steps=1000)"')
    p.add_argument("-o", "--output", default="lr.png")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--log", action="store_true")
    p.set_defaults(fn=_plot)

    p = sub.add_parser("demo", help="the main job: a vectorized LR sweep with a report")
    p.add_argument("--out", default=None, help="output folder (default: jaxlr-out)")
    p.add_argument("--quick", action="store_true", help="a seconds-long version for tests")
    p.set_defaults(fn=_demo)

    p = sub.add_parser("recommend", help="suggest a schedule for a task x scale x data regime")
    p.add_argument("--task", default="classification",
                   help="classification | generation | reinforcement")
    p.add_argument("--scale", default="small", help="small | large")
    p.add_argument("--data", default="static", help="static | continual")
    p.add_argument("--steps", type=int, default=10_000, help="planned optimizer steps")
    p.add_argument("--peak", type=float, default=None, help="peak LR (default: the recipe's)")
    p.set_defaults(fn=_recommend)

    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
