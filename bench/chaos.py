"""`make chaos`: the full chaos run (≈300 generations, 10% AWS faults, a crash at every boundary, 2 stack
kills, the provider's knobs all on) and its accounting in bench/results/chaos.json.

Run: `.venv/bin/python -m bench.chaos` (options: `--generations`, `--seed`, `--kills`, `--aws-fault-rate`,
`--rate`, `--out`). Exits 1 when any must-be-zero number is not zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.provenance import provenance
from kling_local.chaos.run import ChaosConfig, ChaosRun

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.chaos")
    parser.add_argument("--generations", type=int, default=300)
    parser.add_argument("--rate", type=float, default=5.0, help="creates per second")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--aws-fault-rate", type=float, default=0.1)
    parser.add_argument("--out", default=str(RESULTS / "chaos.json"))
    args = parser.parse_args(argv)
    config = ChaosConfig(
        generations=args.generations,
        rate_per_s=args.rate,
        seed=args.seed,
        stack_kills=args.kills,
        aws_fault_rate=args.aws_fault_rate,
        forged_callbacks=max(10, args.generations // 10),
        settle_timeout_s=600.0,
    )
    accounting = ChaosRun(config).run()
    print(accounting.table())
    result = {
        **provenance("make chaos"),
        "config": accounting.config,
        **accounting.to_json(),
        "violations": accounting.violations,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"written to {out}")
    return 1 if accounting.violations else 0


if __name__ == "__main__":
    sys.exit(main())
