"""The client half of `kling-pipeline`: submit, get, list, wait, cancel, estimate, download, elements,
deliveries and usage, all on the Python SDK (`kling_pipeline_sdk`).

Configuration: `--url` / `--api-key`, else `KLING_PIPELINE_URL` / `KLING_PIPELINE_API_KEY`, else the
`.local/stack.json` a running `kling-pipeline local` writes (its URL and first API key).

Exit codes (also in `kling-pipeline --help` and the README):

    0  succeeded (or the command did what it was asked)
    1  any other error (server error, network, checksum mismatch)
    2  invalid input (bad flags, or the API answered 400/413/415/422)
    3  authentication (missing or unknown API key: 401/403)
    4  the generation failed
    5  the generation was canceled
    6  timed out waiting
    7  not found (404)
    8  budget exceeded (402)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_AUTH = 0, 1, 2, 3
EXIT_FAILED, EXIT_CANCELED, EXIT_TIMEOUT, EXIT_NOT_FOUND, EXIT_BUDGET = 4, 5, 6, 7, 8
EXIT_CODES_HELP = (
    "exit codes: 0 succeeded · 1 error · 2 invalid input · 3 auth · 4 generation failed · "
    "5 canceled · 6 timeout · 7 not found · 8 budget exceeded"
)
STATE_FILE = Path(".local/stack.json")
_STATUS_EXIT = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "canceled": EXIT_CANCELED}
_REMOTE = ("http://", "https://", "s3://")

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A problem with how the command was called (exit 2)."""


# ---- parser -----------------------------------------------------------------------------------------


def register(sub: Any) -> None:
    """Add the client subcommands to `kling-pipeline`'s subparsers; each sets `run` to its handler."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="API base URL (else KLING_PIPELINE_URL, else .local/stack.json)")
    common.add_argument("--api-key", help="API key (else KLING_PIPELINE_API_KEY, else .local/stack.json)")
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, parents=[common], help=help_text, description=help_text, epilog=EXIT_CODES_HELP
        )
        parser.set_defaults(run=handler)
        return parser

    submit = command("submit", _submit, "create a generation (local files are uploaded first)")
    _request_flags(submit)
    submit.add_argument("--idempotency-key", help="same key + body within 24 h never submits twice")
    _wait_flags(submit)
    submit.add_argument("--wait", action="store_true", help="wait for the result, showing progress")

    estimate = command("estimate", _estimate, "quote a request without submitting it")
    _request_flags(estimate)

    get = command("get", _get, "show a generation")
    get.add_argument("id")

    listing = command("list", _list, "list generations, newest first")
    listing.add_argument(
        "--status", choices=["queued", "submitted", "processing", "succeeded", "failed", "canceled"]
    )
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")

    wait = command("wait", _wait, "wait for a generation to finish, showing progress")
    wait.add_argument("id")
    _wait_flags(wait)

    cancel = command("cancel", _cancel, "stop a generation")
    cancel.add_argument("id")

    download = command("download", _download, "download a generation's videos (sha256-verified)")
    download.add_argument("id")
    download.add_argument("--dir", default=".", help="target directory (default .)")

    deliveries = command("deliveries", _deliveries, "webhook delivery attempts of a generation")
    deliveries.add_argument("id")

    usage = command("usage", _usage, "budget, spend and reservations of a month")
    usage.add_argument("--month", help="YYYY-MM (default: this month)")

    elements = sub.add_parser("elements", help="custom elements: create, list, get, delete")
    actions = elements.add_subparsers(dest="elements_command", required=True)
    create = actions.add_parser("create", parents=[common], help="create an element", epilog=EXIT_CODES_HELP)
    create.add_argument("--name", required=True)
    create.add_argument("--description")
    create.add_argument("--frontal-image", required=True, help="https://, s3:// or a local file")
    create.add_argument("--reference-image", action="append", required=True, help="1-3; repeat the flag")
    create.set_defaults(run=_element_create)
    for name, handler, text in (("get", _element_get, "show"), ("delete", _element_delete, "delete")):
        action = actions.add_parser(name, parents=[common], help=f"{text} an element", epilog=EXIT_CODES_HELP)
        action.add_argument("id")
        action.set_defaults(run=handler)
    actions.add_parser("list", parents=[common], help="list elements", epilog=EXIT_CODES_HELP).set_defaults(
        run=_element_list
    )


def _request_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of the generation request (DESIGN.md §4)."""
    add = parser.add_argument
    add(
        "--mode",
        required=True,
        choices=["text-to-video", "image-to-video", "reference-to-video", "video-edit"],
    )
    add("--model", choices=["kling-o3", "kling-3.0", "kling-o1"])
    add("--prompt")
    add("--negative-prompt")
    add("--duration", type=int, help="seconds, 3-15")
    add("--aspect-ratio", choices=["16:9", "9:16", "1:1"])
    add("--quality", choices=["720p", "1080p", "4k"])
    add("--sound", action=argparse.BooleanOptionalAction, default=None)
    add("--first-frame", help="https://, s3:// or a local JPG/PNG (uploaded)")
    add("--end-frame", help="https://, s3:// or a local JPG/PNG (uploaded)")
    add("--reference-image", action="append", help="repeatable; https://, s3:// or a local file")
    add("--element", action="append", help="element id (elm_…); repeatable")
    add("--video", help="https://, s3:// or a local MP4/MOV (uploaded)")
    add("--keep-original-sound", action=argparse.BooleanOptionalAction, default=None)
    add("--shot", action="append", metavar="SECONDS:PROMPT", help="multi-shot; repeatable, in order")
    add("--cfg-scale", type=float)
    add("--watermark", action=argparse.BooleanOptionalAction, default=None)
    add("--provider", choices=["kling", "evolink", "kling3api"])
    add("--webhook-url")
    add("--metadata", action="append", metavar="KEY=VALUE", help="repeatable")
    add("--deadline-s", type=int, help="fail the generation if not done within this many seconds")


def _wait_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait (default 900)")
    parser.add_argument("--download", metavar="DIR", help="download the videos here when done")


# ---- configuration ----------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from kling_pipeline_sdk import Client

    url = args.url or os.environ.get("KLING_PIPELINE_URL")
    key = args.api_key or os.environ.get("KLING_PIPELINE_API_KEY")
    if (not url or not key) and STATE_FILE.is_file():
        state = json.loads(STATE_FILE.read_text(encoding="utf-8"))
        url = url or state.get("api_url")
        key = key or next(iter(state.get("api_keys") or {}), None)
    if not url or not key:
        raise UsageError(
            "no API configured: set KLING_PIPELINE_URL and KLING_PIPELINE_API_KEY (or pass --url/--api-key), "
            "or start a local stack with `kling-pipeline local`"
        )
    return Client(url, key)


def run(args: argparse.Namespace) -> int:
    """Run a client subcommand and turn every failure into its documented exit code and one line."""
    from kling_pipeline_sdk import (
        ApiError,
        AuthenticationError,
        BudgetExceededError,
        InvalidRequestError,
        KlingPipelineError,
        NotFoundError,
        WaitTimeoutError,
    )

    codes: list[tuple[type[Exception], int]] = [
        (InvalidRequestError, EXIT_INVALID),
        (AuthenticationError, EXIT_AUTH),
        (NotFoundError, EXIT_NOT_FOUND),
        (BudgetExceededError, EXIT_BUDGET),
        (WaitTimeoutError, EXIT_TIMEOUT),
        (UsageError, EXIT_INVALID),
        (ApiError, EXIT_ERROR),
        (KlingPipelineError, EXIT_ERROR),
        (OSError, EXIT_ERROR),
    ]
    try:
        handler: Handler = args.run
        return handler(args)
    except tuple(kind for kind, _ in codes) as exc:
        code = next(code for kind, code in codes if isinstance(exc, kind))
        _error(args, exc, code)
        return code


def _error(args: argparse.Namespace, exc: Exception, code: int) -> None:
    from kling_pipeline_sdk import ApiError, WaitTimeoutError

    if getattr(args, "json", False):
        body: dict[str, Any] = {"error": {"code": type(exc).__name__, "message": str(exc), "exit_code": code}}
        if isinstance(exc, ApiError):
            body["error"].update(
                code=exc.code, message=exc.message, details=[d.model_dump() for d in exc.details]
            )
        if isinstance(exc, WaitTimeoutError):
            body["generation"] = exc.generation.model_dump(mode="json")
        print(json.dumps(body, indent=2))
        return
    print(f"error: {exc}", file=sys.stderr)
    if isinstance(exc, ApiError):
        for detail in exc.details:
            print(f"  {detail.field}: {detail.issue}", file=sys.stderr)


# ---- commands ---------------------------------------------------------------------------------------


def _request_body(args: argparse.Namespace, client: Any) -> dict[str, Any]:
    def media(value: str | None) -> str | None:
        if value is None or value.startswith(_REMOTE):
            return value
        path = Path(value)
        if not path.is_file():
            raise UsageError(f"{value}: not a URL (https://, s3://) and no such file")
        uri: str = client.upload(path)
        if not args.json:
            print(f"uploaded {path} -> {uri}", file=sys.stderr)
        return uri

    video = None
    if args.video:
        video = {"url": media(args.video), "keep_original_sound": args.keep_original_sound}
    body: dict[str, Any] = {
        "mode": args.mode,
        "model": args.model,
        "prompt": args.prompt,
        "negative_prompt": args.negative_prompt,
        "duration": args.duration,
        "aspect_ratio": args.aspect_ratio,
        "quality": args.quality,
        "sound": args.sound,
        "first_frame": media(args.first_frame),
        "end_frame": media(args.end_frame),
        "reference_images": [media(item) for item in args.reference_image] if args.reference_image else None,
        "elements": [{"element_id": item} for item in args.element] if args.element else None,
        "video": {k: v for k, v in video.items() if v is not None} if video else None,
        "shots": [_shot(item) for item in args.shot] if args.shot else None,
        "cfg_scale": args.cfg_scale,
        "watermark": args.watermark,
        "provider": args.provider,
        "webhook_url": args.webhook_url,
        "metadata": dict(_pair(item) for item in args.metadata) if args.metadata else None,
        "deadline_s": args.deadline_s,
    }
    return {name: value for name, value in body.items() if value is not None}


def _shot(text: str) -> dict[str, Any]:
    seconds, sep, prompt = text.partition(":")
    if not sep or not seconds.strip().isdigit() or not prompt.strip():
        raise UsageError(f"--shot {text!r}: expected SECONDS:PROMPT, e.g. --shot '3:Wide shot of a harbour'")
    return {"duration": int(seconds), "prompt": prompt.strip()}


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--metadata {text!r}: expected KEY=VALUE")
    return key, value


def _submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        generation = client.create(_request_body(args, client), idempotency_key=args.idempotency_key)
        if not args.wait:
            _show(args, generation)
            return EXIT_OK
        if not args.json:
            print(f"submitted {generation.id}", file=sys.stderr)
        return _finish(args, client, generation.id)


def _wait(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _finish(args, client, args.id)


def _finish(args: argparse.Namespace, client: Any, generation_id: str) -> int:
    with _progress(quiet=args.json) as report:
        generation = client.wait(generation_id, timeout_s=args.timeout, on_progress=report)
    paths = client.download(generation, args.download) if args.download and generation.outputs else []
    _show(args, generation, paths=paths)
    return _STATUS_EXIT.get(generation.status, EXIT_ERROR)


def _get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _show(args, client.get(args.id))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        items = list(client.list(status=args.status, limit=args.limit))
    if args.json:
        print(json.dumps({"items": [item.model_dump(mode="json") for item in items]}, indent=2))
    for item in [] if args.json else items:
        progress = f"{item.progress}%" if item.progress is not None else ""
        print(f"{item.id}  {item.status:<10} {progress:>4}  {item.mode:<18} {_when(item.created_at)}")
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _show(args, client.cancel(args.id))
    return EXIT_OK


def _estimate(args: argparse.Namespace) -> int:
    with _client(args) as client:
        estimate = client.estimate(_request_body(args, client))
    if args.json:
        print(estimate.model_dump_json(indent=2))
        return EXIT_OK
    for quote in estimate.quotes:
        mark = "*" if quote.provider == estimate.chosen else " "
        price = f"${quote.usd}" if quote.usd is not None else "-"
        seconds = f"{quote.billed_seconds} s" if quote.billed_seconds else ""
        print(f"{mark} {quote.provider:<10} {price:>10}  {seconds:>5}  {quote.reason or quote.note or ''}")
    print(f"chosen: {estimate.chosen or 'none'}")
    return EXIT_OK if estimate.chosen else EXIT_INVALID


def _download(args: argparse.Namespace) -> int:
    with _client(args) as client:
        paths = client.download(args.id, args.dir)
    if args.json:
        print(json.dumps({"files": [str(path) for path in paths]}))
    for path in [] if args.json else paths:
        print(path)
    return EXIT_OK


def _deliveries(args: argparse.Namespace) -> int:
    with _client(args) as client:
        attempts = client.deliveries(args.id)
    if args.json:
        print(json.dumps({"items": [attempt.model_dump(mode="json") for attempt in attempts]}, indent=2))
    for attempt in [] if args.json else attempts:
        print(
            f"{_when(attempt.attempted_at)}  {attempt.event_type:<22} #{attempt.attempt}  {attempt.outcome}"
        )
    return EXIT_OK


def _usage(args: argparse.Namespace) -> int:
    with _client(args) as client:
        usage = client.usage(args.month)
    if args.json:
        print(usage.model_dump_json(indent=2))
        return EXIT_OK
    budget = f"${usage.budget_usd}" if usage.budget_usd is not None else "none"
    spent, reserved = usage.spent_usd, usage.reserved_usd
    print(f"month {usage.month or '-'}: spent ${spent}, reserved ${reserved}, budget {budget}")
    for title, table in (("by provider", usage.by_provider), ("by mode", usage.by_mode)):
        for name, value in table.items():
            print(f"  {title} {name}: {value}")
    return EXIT_OK


def _element_create(args: argparse.Namespace) -> int:
    with _client(args) as client:

        def media(value: str) -> str:
            if value.startswith(_REMOTE):
                return value
            if not Path(value).is_file():
                raise UsageError(f"{value}: not a URL (https://, s3://) and no such file")
            uri: str = client.upload(value)
            return uri

        element = client.create_element(
            args.name,
            media(args.frontal_image),
            [media(item) for item in args.reference_image],
            description=args.description,
        )
    _show_element(args, element)
    return EXIT_OK


def _element_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _show_element(args, client.get_element(args.id))
    return EXIT_OK


def _element_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete_element(args.id)
    print(json.dumps({"deleted": args.id}) if args.json else f"deleted {args.id}")
    return EXIT_OK


def _element_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        items = list(client.list_elements())
    if args.json:
        print(json.dumps({"items": [item.model_dump(mode="json") for item in items]}, indent=2))
    for item in [] if args.json else items:
        print(f"{item.id}  {item.status:<10} {item.name:<20} {','.join(item.ready_providers)}")
    return EXIT_OK


# ---- output -----------------------------------------------------------------------------------------


def _when(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%d %H:%M:%SZ"))


def _show(args: argparse.Namespace, generation: Any, *, paths: list[Path] | None = None) -> None:
    if args.json:
        body = generation.model_dump(mode="json")
        if paths is not None:
            body["downloaded"] = [str(path) for path in paths]
        print(json.dumps(body, indent=2))
        return
    lines = [f"{generation.id}  {generation.status}  {generation.mode}  {generation.model}"]
    if generation.provider:
        lines.append(f"  provider   {generation.provider} ({generation.provider_task_id or '-'})")
    if generation.progress is not None:
        lines.append(f"  progress   {generation.progress}%")
    if generation.queue_position is not None:
        lines.append(f"  queue      {_place_in_line(generation)}")
    if generation.estimated_cost and generation.estimated_cost.usd is not None:
        lines.append(f"  estimated  ${generation.estimated_cost.usd}")
    if generation.actual_cost and generation.actual_cost.usd is not None:
        lines.append(f"  cost       ${generation.actual_cost.usd}")
    for output in generation.outputs:
        lines.append(f"  output     {output.s3_uri}  {output.bytes} bytes  sha256 {output.sha256}")
    if generation.error:
        lines.append(f"  error      {generation.error.code}: {generation.error.message}")
    lines += [f"  saved      {path}" for path in paths or []]
    print("\n".join(lines))


def _show_element(args: argparse.Namespace, element: Any) -> None:
    if args.json:
        print(element.model_dump_json(indent=2))
        return
    print(f"{element.id}  {element.status}  {element.name}")
    print(f"  ready at   {', '.join(element.ready_providers) or '-'}")
    if element.error:
        print(f"  error      {element.error.code}: {element.error.message}")


@contextmanager
def _progress(*, quiet: bool) -> Iterator[Callable[[Any], None]]:
    """A live progress bar on a terminal (rich), one plain line per change otherwise, nothing for --json."""
    started = time.monotonic()
    if quiet:
        yield lambda _generation: None
        return
    if sys.stderr.isatty():
        with _rich_progress() as report:
            yield report
        return
    last: list[str] = []

    def plain(generation: Any) -> None:
        line = _describe(generation)
        if not last or last[-1] != line:
            last.append(line)
            print(f"[{time.monotonic() - started:6.1f}s] {generation.id} {line}", file=sys.stderr, flush=True)

    yield plain


def _describe(generation: Any) -> str:
    parts = [generation.status]
    if generation.progress is not None:
        parts.append(f"{generation.progress}%")
    if generation.queue_position is not None:
        parts.append(_place_in_line(generation))
    return " ".join(parts)


def _place_in_line(generation: Any) -> str:
    """`position 3, estimated start 12:04:31 UTC (in ~2 min)` for a queued generation."""
    text = f"position {generation.queue_position}"
    start = generation.estimated_start_at
    if start is None:
        return text
    wait_s = max(0.0, start.timestamp() - time.time())
    wait = f"{round(wait_s)} s" if wait_s < 90 else f"{round(wait_s / 60)} min"
    return f"{text}, estimated start {start.astimezone(UTC):%H:%M:%S} UTC (in ~{wait})"


@contextmanager
def _rich_progress() -> Iterator[Callable[[Any], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[queue]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("submitted", total=100, queue="")

        def report(generation: Any) -> None:
            queue = _place_in_line(generation) if generation.queue_position is not None else ""
            done = 100 if generation.status == "succeeded" else generation.progress or 0
            bar.update(task, completed=done, description=f"{generation.id} {generation.status}", queue=queue)

        yield report
