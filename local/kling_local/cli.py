"""`kling-pipeline` command line: `simulate` (provider simulator) and `local` (the whole stack)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kling-pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    simulate = sub.add_parser("simulate", help="run the provider simulator (kling, evolink, kling3api)")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=9100)

    args = parser.parse_args(argv)
    if args.command == "simulate":
        from kling_local.simulator.server import serve_forever

        serve_forever(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
