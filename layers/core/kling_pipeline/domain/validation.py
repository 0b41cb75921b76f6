"""Turning validation failures into `FieldIssue`s, plus the URL checks the request model needs.

Pydantic reports errors as `loc` tuples and messages written for Python developers ("Input should be a
valid integer", links to its docs, the offending `input_value`). Our API promises field paths in the user's
terms (`shots[1].duration`, `video.url`) and messages that say the limit and what was sent, so every error
goes through `issues_from_validation_error` before it leaves the core.

Cross-field rules collect several issues at once and raise them together as `RuleViolations` (a
`ValueError`, so pydantic carries it inside its `ValidationError` and direct construction of a model still
fails the usual way).

The URL helpers are pure string checks (no DNS): `webhook_url_issue` rejects literal private addresses and
obviously local names at request time, so a bad URL fails the request instead of every delivery; the
name can still change, which is why `netguard` checks the resolved addresses again at delivery time.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from kling_pipeline.errors import FieldIssue, InvalidInput

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png"})
VIDEO_EXTENSIONS = frozenset({"mp4", "mov"})
MEDIA_URL_MAX_CHARS = 4096  # presigned S3 URLs with session tokens run past 2,000 characters
WEBHOOK_URL_MAX_CHARS = 2048

# No request of ours nests more than a few levels; the parsers recurse, so depth is bounded before use.
MAX_JSON_DEPTH = 32

# A last path segment that looks like "name.ext"; segments such as "v1.2" (1-char suffix) are not files.
_EXTENSION = re.compile(r"\.([A-Za-z0-9]{2,5})$")
# S3 bucket naming rules (3-63 chars, lowercase letters, digits, dots and hyphens, alphanumeric ends).
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Names that never point at a public receiver; the suffixes cover mDNS, split-horizon and cloud-internal DNS.
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_LOCAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".home.arpa", ".lan", ".intranet")
# IPv6 forms whose last 32 bits are an IPv4 address that some stack will reach: IPv4-compatible (::a.b.c.d),
# IPv4-translated (::ffff:0:a.b.c.d) and the well-known NAT64 prefix; judged by the embedded address.
_EMBEDS_IPV4 = (
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
    ipaddress.IPv6Network("64:ff9b::/96"),
)
# The local-use NAT64 prefix (RFC 8215) translates into the operator's own network: never public.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}
)


class RuleViolations(ValueError):
    """Several rule breaches found together, each already addressed by its user-facing field path."""

    def __init__(self, issues: Sequence[FieldIssue]) -> None:
        super().__init__("; ".join(f"{issue.field}: {issue.issue}" for issue in issues))
        self.issues = list(issues)


def field_path(loc: Iterable[int | str]) -> str:
    """`("shots", 1, "duration")` → `shots[1].duration`; the empty location is the body itself."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":  # pydantic's marker for a bad dict key: the key path is already there
            path += " (key)"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _json_type(value: Any) -> str:
    """The JSON name of a value's type, as the caller wrote it (they sent JSON, not Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _message(error: ErrorDetails) -> str:
    """One pydantic error as a sentence a user can act on: the expectation, the limit, what was sent."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    got = _json_type(error.get("input"))
    value = error.get("input")
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    simple = {
        "missing": "required",
        "extra_forbidden": "unknown field",
        "string_type": f"must be a string, got {got}",
        "int_type": f"must be an integer, got {got}",
        "int_parsing": f"must be an integer, got {got}",
        "int_from_float": f"must be a whole number, got {value}",
        "float_type": f"must be a number, got {got}",
        "float_parsing": f"must be a number, got {got}",
        "bool_type": f"must be true or false, got {got}",
        "bool_parsing": f"must be true or false, got {got}",
        "list_type": f"must be an array, got {got}",
        "dict_type": f"must be an object, got {got}",
        "model_type": f"must be an object, got {got}",
        "model_attributes_type": f"must be an object, got {got}",
        "finite_number": "must be a finite number",
    }
    if kind in simple:
        return simple[kind]
    if kind == "enum":
        return f"must be one of {ctx.get('expected', '')}, got {value!r}"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters, got {len(str(value))}"
    if kind == "string_too_short":
        return f"must be at least {ctx['min_length']} characters, got {len(str(value))}"
    if kind == "too_long":
        return f"must have at most {_items(ctx['max_length'])}, got {ctx.get('actual_length')}"
    if kind == "too_short":
        return f"must have at least {_items(ctx['min_length'])}, got {ctx.get('actual_length')}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        limit = ctx[key]
        shown = f"{limit:g}" if isinstance(limit, float) else limit
        return f"must be {words} {shown}, got {value}"
    if kind == "string_pattern_mismatch":
        return "contains characters that are not allowed"
    # Anything rarer: pydantic's own sentence, in our voice, without its URL or input echo.
    return error["msg"].replace("Input should be", "must be")


def issues_from_validation_error(exc: ValidationError) -> list[FieldIssue]:
    """Every error in `exc` as FieldIssues, expanding `RuleViolations` into its own issues."""
    return issues_from_errors(exc.errors(include_url=False))


def issues_from_errors(errors: Iterable[ErrorDetails]) -> list[FieldIssue]:
    """Pydantic error dicts (also as Powertools hands them over, already unpacked) as FieldIssues."""
    issues: list[FieldIssue] = []
    for error in errors:
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, RuleViolations):
            issues.extend(cause.issues)
        else:
            issues.append(FieldIssue(field_path(error["loc"]), _message(error)))
    return issues


def invalid_input(issues: Sequence[FieldIssue]) -> InvalidInput:
    """The one `InvalidInput` for a list of issues; the message names the first and counts the rest."""
    first = issues[0]
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return InvalidInput(f"invalid request: {first.field}: {first.issue}{more}", list(issues))


class JsonTooDeep(ValueError):
    """JSON nested deeper than `MAX_JSON_DEPTH`: refused as bad input, never a crash (RecursionError)."""

    def __init__(self) -> None:
        super().__init__(f"is nested more than {MAX_JSON_DEPTH} levels deep")


def load_json(raw: str | bytes) -> Any:
    """`json.loads` for text from outside (API bodies, sidecars, job lines): malformed text raises
    ValueError as usual, and nesting past `MAX_JSON_DEPTH` raises `JsonTooDeep`, checked without
    recursion, so neither the parser nor the validators downstream can overflow the stack."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JsonTooDeep from None
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_JSON_DEPTH:
                    raise JsonTooDeep
                pending.append((child, depth + 1))
    return value


def url_extension(path: str) -> str | None:
    """The lowercase file extension of a URL path's last segment, or None when it has none."""
    match = _EXTENSION.search(path.rsplit("/", 1)[-1])
    return match.group(1).lower() if match else None


def media_url_issue(
    url: str, allowed_extensions: frozenset[str], *, allow_http_loopback: bool = False
) -> str | None:
    """Why `url` cannot be a media input (None when it can).

    Accepts `https://` to a public host (probed, then handed to providers as is) and `s3://bucket/key`
    (presigned for them). The host rules are the webhooks' (no literal private address, no local name, no
    credentials): the pipeline itself fetches the headers, so an internal host must never get this far.
    `allow_http_loopback` (the local stack's LOCAL_ALLOW_HTTP_LOOPBACK) also admits http(s) to loopback,
    so a developer can serve inputs from a local web server. The extension is checked only when the URL
    shows one: many CDNs serve images from extension-less paths, and the bytes are checked anyway.
    """
    if len(url) > MEDIA_URL_MAX_CHARS:
        return f"must be at most {MEDIA_URL_MAX_CHARS} characters, got {len(url)}"
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "s3":
        key = parts.path.lstrip("/")
        if not _S3_BUCKET.match(parts.netloc) or not key:
            return f"must be a well-formed s3://bucket/key URL, got {url!r}"
        path = key
    elif scheme in ("https", "http"):
        if not parts.hostname:
            return f"must be an https:// URL with a host name, got {url!r}"
        loopback = allow_http_loopback and is_loopback_host(parts.hostname)
        if scheme == "http" and not loopback:
            return "must be an https:// or s3://bucket/key URL, got http://"
        if not loopback and (issue := public_host_issue(parts)) is not None:
            return issue
        path = parts.path
    else:
        return f"must be an https:// or s3://bucket/key URL, got {_scheme_of(scheme, url)}"
    extension = url_extension(path)
    if extension is not None and extension not in allowed_extensions:
        *others, last = [f".{ext}" for ext in sorted(allowed_extensions)]
        return f"must point to a {', '.join(others)} or {last} file, got .{extension}"
    return None


def is_loopback_host(host: str) -> bool:
    """`localhost` or a literal loopback address (127.0.0.0/8, ::1), as the local stack serves them."""
    ip = parse_ip_literal(host)
    return ip.is_loopback if ip is not None else host.rstrip(".").lower() in _LOCAL_NAMES


def public_host_issue(parts: SplitResult) -> str | None:
    """Why the host of `parts` is not a public receiver (None when it may be): credentials in the URL, a
    bad port, a literal private/loopback/link-local/reserved address or an obviously local name. Pure
    string checks; `netguard` checks the resolved addresses again when we connect."""
    host = parts.hostname or ""
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (user:password@)"
    try:
        _ = parts.port
    except ValueError:
        return "has an invalid port"
    ip = parse_ip_literal(host)
    if ip is not None:
        if is_forbidden_ip(ip):
            return f"must be a public address; {host} is private, loopback, link-local or reserved"
        return None
    if is_local_name(host):
        return f"must be a public, fully qualified host name, got {host!r}"
    return None


def _scheme_of(scheme: str, url: str) -> str:
    return f"{scheme}://" if scheme else repr(url)


def parse_ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host string spells, including the shorthand forms (`127.1`, `0x7f000001`, `2130706433`)
    that HTTP clients and resolvers accept and that are a classic way around naive IP checks."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def is_forbidden_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for anything but a globally routable unicast address (private, loopback, link-local and the
    cloud metadata address 169.254.169.254, reserved, multicast, CGNAT, unspecified); IPv6 forms that
    embed an IPv4 address are judged by that address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64:
            return True
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and any(ip in network for network in _EMBEDS_IPV4):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_forbidden_ip(embedded)
    return ip.is_multicast or not ip.is_global


def is_local_name(host: str) -> bool:
    """Names that resolve to the machine itself or to a private network by convention; single-label
    names (`https://intranet/`) count, because search domains make them resolve inside the network."""
    name = host.rstrip(".").lower()
    return (
        name in _LOCAL_NAMES or name in _METADATA_NAMES or name.endswith(_LOCAL_SUFFIXES) or "." not in name
    )


def webhook_url_issue(url: str, *, allow_private: bool = False) -> str | None:
    """Why `url` cannot receive end-user webhooks (None when it can), DESIGN.md §5 rule 12.

    `allow_private` is the local stack's escape hatch (`LOCAL_ALLOW_PRIVATE_WEBHOOKS=1`): it admits plain
    http and loopback/private hosts, because the demo receiver listens on http://127.0.0.1.
    """
    if len(url) > WEBHOOK_URL_MAX_CHARS:
        return f"must be at most {WEBHOOK_URL_MAX_CHARS} characters, got {len(url)}"
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    schemes = ("https", "http") if allow_private else ("https",)
    if scheme not in schemes:
        return f"must be an https:// URL, got {_scheme_of(scheme, url)}"
    if not parts.hostname:
        return "must include a host name"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (user:password@); sign-in is done with the webhook signature"
    if allow_private:
        try:
            _ = parts.port
        except ValueError:
            return "has an invalid port"
        return None
    return public_host_issue(parts)
