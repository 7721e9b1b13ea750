"""Prints the number of parity cases and the worst errors: ``python -m tests.parity.report``."""

from __future__ import annotations

import math
import time

from .cases import all_cases
from .compare import measure


def main() -> None:
    t0 = time.perf_counter()
    cases = all_cases()
    worst: dict[str, dict[str, float]] = {}
    failed = []
    for case in cases:
        e = measure(case, case.ref())
        w = worst.setdefault(case.peer, dict(n=0, rel64=math.nan, rel32=0.0, abs32=0.0))
        w["n"] += 1
        for k in ("rel64", "rel32", "abs32"):
            v = getattr(e, k)
            if not math.isnan(v):
                w[k] = v if math.isnan(w[k]) else max(w[k], v)
        if not e.ok:
            failed.append((case.name, e))
    print(f"{'peer':<13}{'cases':>6}{'rel err f64':>14}{'rel err f32':>14}{'abs err/peak f32':>18}")
    for peer, w in worst.items():
        r64 = "f32 peer" if math.isnan(w["rel64"]) else f"{w['rel64']:.2e}"
        print(f"{peer:<13}{w['n']:>6}{r64:>14}{w['rel32']:>14.2e}{w['abs32']:>18.2e}")
    print(f"total cases: {len(cases)}; failed: {len(failed)}; {time.perf_counter() - t0:.1f} s")
    for name, e in failed:
        print("FAILED", name, e)


if __name__ == "__main__":
    main()
