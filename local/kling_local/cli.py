"""`kling-pipeline` command line: `simulate` (provider simulator), `local` (the whole stack), the API
client commands (`submit`, `get`, `list`, `wait`, … in `kling_local.client_cli`) and the operator's
`tenants` commands (`kling_local.tenants_cli`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from kling_local import client_cli

    parser = argparse.ArgumentParser(prog="kling-pipeline", epilog=client_cli.EXIT_CODES_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    client_cli.register(sub)

    simulate = sub.add_parser("simulate", help="run the provider simulator (kling, evolink, kling3api)")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=9100)

    aws = sub.add_parser(
        "aws", help="an AWS endpoint (moto) that outlives local stacks: use with local --aws-endpoint-url"
    )
    aws.add_argument("--host", default="127.0.0.1")
    aws.add_argument("--port", type=int, default=5000)

    local = sub.add_parser("local", help="run the whole stack on this machine (moto, handlers, simulator)")
    local.add_argument("--port", type=int, default=8000, help="front door (API) port")
    local.add_argument("--aws-port", type=int, default=5000, help="moto server port (AWS_ENDPOINT_URL)")
    local.add_argument(
        "--aws-endpoint-url",
        default=None,
        metavar="URL",
        help="use this AWS endpoint (e.g. `kling-pipeline aws`) instead of starting moto; resources are "
        "created there or reused, so the stack can be stopped and started against the same state",
    )
    local.add_argument("--simulator-port", type=int, default=9100)
    local.add_argument(
        "--no-simulator", action="store_true", help="use the providers the environment configures"
    )
    local.add_argument("--state-file", default=".local/stack.json")
    local.add_argument("--template", default=None, help="SAM template (default: ./template.yaml)")
    local.add_argument(
        "--max-visibility-timeout",
        type=int,
        default=None,
        metavar="SECONDS",
        help="cap every queue's VisibilityTimeout so failed messages are retried sooner",
    )
    local.add_argument(
        "--parameter", action="append", default=[], metavar="KEY=VALUE", help="template parameter override"
    )

    from kling_local import tenants_cli

    tenants_cli.add_parser(sub)

    args = parser.parse_args(argv)
    if args.command == "tenants":
        return tenants_cli.run(args)
    if hasattr(args, "run"):
        return client_cli.run(args)
    if args.command == "simulate":
        from kling_local.simulator.server import serve_forever

        serve_forever(host=args.host, port=args.port)
    elif args.command == "aws":
        from kling_local.serving import stop_signals
        from kling_local.stack.endpoint import serve

        with stop_signals() as stopping:
            server = serve(args.host, args.port)
            while not stopping.wait(0.5):
                pass
            server.stop()
    elif args.command == "local":
        from kling_local.stack.runner import LocalStack, serve_until_signalled

        parameters = dict(item.split("=", 1) for item in args.parameter if "=" in item)
        stack = LocalStack(
            template_path=args.template,
            api_port=args.port,
            aws_port=args.aws_port,
            aws_endpoint_url=args.aws_endpoint_url,
            simulator=not args.no_simulator,
            simulator_port=args.simulator_port,
            parameter_overrides=parameters,
            max_visibility_timeout_s=args.max_visibility_timeout,
        )
        serve_until_signalled(stack, args.state_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
