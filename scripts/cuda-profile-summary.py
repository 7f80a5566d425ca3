#!/usr/bin/env python3
"""Sums cubecl's kernel profile (lines `| 1.23ms | kernel name`, written when a
cubecl.toml turns `[profiling.logger]` on) per kernel, so one profiled
`nq-train --bench` run on a GPU says where the device time goes.

usage: cuda-profile-summary.py profile.log [--updates N] [--top K]
"""
import argparse
import re
import sys
from collections import defaultdict

UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
LINE = re.compile(r"^\|\s*([0-9.]+)(ns|µs|us|ms|s)\s*\|\s*(.+?)\s*$")


def family(name: str) -> str:
    """The kernel's name without the numbers (shapes, ids) that make each launch unique."""
    return re.sub(r"(?<![A-Za-wyz0-9])\d+", "#", name)[:160]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--updates", type=int, default=1, help="updates the run made (for per-update figures)")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    total = 0.0
    launches = 0
    by_family = defaultdict(lambda: [0.0, 0])
    unparsed = 0
    with open(args.log, encoding="utf-8", errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.strip())
            if not m:
                unparsed += 1
                continue
            seconds = float(m.group(1)) * UNITS[m.group(2)]
            entry = by_family[family(m.group(3))]
            entry[0] += seconds
            entry[1] += 1
            total += seconds
            launches += 1
    if launches == 0:
        print(f"{args.log}: no kernel timings found ({unparsed} other lines)", file=sys.stderr)
        return 1
    print(f"{launches} kernel launches, {total:.3f} s of GPU time "
          f"({launches / args.updates:.0f} launches and {total / args.updates * 1e3:.1f} ms per update); "
          f"{len(by_family)} kinds; {unparsed} other lines")
    print(f"{'share':>6} {'seconds':>9} {'launches':>9} {'mean µs':>9}  kernel")
    ranked = sorted(by_family.items(), key=lambda kv: -kv[1][0])
    for name, (seconds, count) in ranked[: args.top]:
        print(f"{100 * seconds / total:5.1f}% {seconds:9.4f} {count:9d} {seconds / count * 1e6:9.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
