"""`kling-pipeline tenants …`: operator commands on tenants (monthly budgets), straight to DynamoDB.

Where the table is: `--stack-name` (a deployed stack's `GenerationsTableName` output, read with the
deployer's AWS credentials), `--table` (a table name, same credentials), or by default the local stack
that `kling-pipeline local` is running (its `.local/stack.json`: moto's endpoint and the table name).
The writes go through the pipeline's own `BudgetStore`, so the CLI and the API can never disagree.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import boto3

from kling_pipeline.store.budgets import BudgetStore

DEFAULT_STATE_FILE = ".local/stack.json"


def add_parser(sub: Any) -> None:
    """Register `tenants` with its subcommands on the CLI's subparsers."""
    tenants = sub.add_parser("tenants", help="operator commands: tenant budgets")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--stack-name", help="a deployed stack (reads its GenerationsTableName output)")
    where.add_argument("--table", help="the generations table name (AWS credentials from the environment)")
    where.add_argument("--region", default=None)
    where.add_argument("--state-file", default=DEFAULT_STATE_FILE, help="the local stack's state file")
    actions = tenants.add_subparsers(dest="tenants_command", required=True)
    set_budget = actions.add_parser("set-budget", parents=[where], help="set a tenant's monthly cap in USD")
    set_budget.add_argument("tenant")
    amount = set_budget.add_mutually_exclusive_group(required=True)
    amount.add_argument("--monthly-usd", type=_usd, help="the cap, e.g. 250 or 99.50")
    amount.add_argument(
        "--clear", action="store_true", help="remove the override (the stack default applies)"
    )
    get_budget = actions.add_parser("get-budget", parents=[where], help="show a tenant's override")
    get_budget.add_argument("tenant")


def run(args: argparse.Namespace) -> int:
    store = BudgetStore(_table(args))
    if args.tenants_command == "set-budget":
        store.set_budget(args.tenant, None if args.clear else args.monthly_usd)
    budget = store.get_budget(args.tenant)
    print(json.dumps({"tenant": args.tenant, "monthly_usd": None if budget is None else f"{budget:.4f}"}))
    return 0


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError("must be a non-negative amount of USD")
    return value


def _table(args: argparse.Namespace) -> Any:
    if args.stack_name or args.table:
        session = boto3.session.Session(region_name=args.region)
        name = args.table or _stack_output(session, args.stack_name, "GenerationsTableName")
        return session.resource("dynamodb").Table(name)
    state_path = Path(args.state_file)
    if not state_path.exists():
        raise SystemExit(
            f"no local stack state at {state_path}: start `kling-pipeline local` or pass --stack-name/--table"
        )
    state = json.loads(state_path.read_text(encoding="utf-8"))
    resource = boto3.session.Session().resource(
        "dynamodb",
        region_name=state["region"],
        endpoint_url=state["aws_endpoint_url"],
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto's dummy credentials
    )
    return resource.Table(state["generations_table"])


def _stack_output(session: boto3.session.Session, stack_name: str, key: str) -> str:
    stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == key:
            return str(output["OutputValue"])
    raise SystemExit(f"stack {stack_name} has no {key} output")
