"""``python -m benchmarks``: every ratio benchmark in one process; writes benchmarks/results.md.

Each benchmark module has ``main() -> dict[str, float]`` and prints its own ratios; this runner
collects them with the date and the machine. A benchmark whose module is missing or fails is
recorded as such (with the error), never silently dropped.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import traceback

from benchmarks._timing import machine

BENCHMARKS = ["overhead", "search", "sharpness", "sweep"]


def _flat(ratios: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in ratios.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def write(path: str, record: dict) -> None:
    """Writes ``record`` (date, machine, results, failures) as markdown at ``path`` and JSON
    beside it."""
    lines = [
        "# Benchmark results\n",
        f"- date: {record['date']}",
        f"- machine: {record['machine']}",
        "- command: `python -m benchmarks` (ratios measured side by side in one process)\n",
    ]
    for name, ratios in record["results"].items():
        lines += [f"## {name}\n", "| measure | value |", "| --- | --- |"]
        lines += [
            f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
            for k, v in _flat(ratios).items()
        ]
        lines.append("")
    for name, why in record["failures"].items():
        lines += [f"## {name}\n", f"FAILED: {why}\n"]
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    with open(os.path.splitext(path)[0] + ".json", "w") as fh:
        json.dump(record, fh, indent=1, default=float)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", default=BENCHMARKS)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results.md"))
    args = parser.parse_args(argv)
    results, failures = {}, {}
    for name in args.names:
        print(f"== {name}", flush=True)
        try:
            results[name] = importlib.import_module(f"benchmarks.{name}").main()
        except Exception as err:  # record and go on: one broken benchmark must not hide the rest
            failures[name] = f"{type(err).__name__}: {err}"
            traceback.print_exc()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    write(args.out, {"date": now, "machine": machine(), "results": results, "failures": failures})
    print(f"wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
