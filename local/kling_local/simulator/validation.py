"""Request checks shared by the three simulated providers (each renders `Invalid` in its own format).

The rules are the seeds' (DESIGN.md §5 gathers them): prompt lengths, shot lists, image/element counts,
callback URLs. They live here once so the three providers cannot drift apart on a rule they share.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

MAX_SHOTS = 6
MAX_SHOT_PROMPT = 512
MAX_CALLBACK_URL = 2048


class Invalid(Exception):
    """A request the provider would reject as malformed; `code` is a provider-specific error code."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def require(condition: bool, message: str, code: str | None = None) -> None:
    if not condition:
        raise Invalid(message, code)


def optional_str(body: dict[str, Any], name: str, *, max_len: int | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    require(isinstance(value, str), f"{name} must be a string")
    assert isinstance(value, str)
    if max_len is not None:
        require(len(value) <= max_len, f"{name} must not exceed {max_len} characters")
    return value


def enum_str(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = body.get(name, default)
    if value is None:
        return None
    require(value in allowed, f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def optional_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    require(isinstance(value, bool), f"{name} must be a boolean")
    return bool(value)


def url_list(value: Any, name: str) -> list[str]:
    """A list of non-empty URL strings (None = empty list)."""
    if value is None:
        return []
    require(isinstance(value, list), f"{name} must be an array")
    require(all(isinstance(v, str) and v.strip() for v in value), f"{name} entries must be non-empty URLs")
    return [str(v) for v in value]


def element_ids(value: Any, name: str) -> list[str]:
    """`[{"element_id": …}]` → ids (strings or integers accepted, like the providers)."""
    if value is None:
        return []
    require(isinstance(value, list), f"{name} must be an array")
    ids: list[str] = []
    for item in value:
        element_id = item.get("element_id") if isinstance(item, dict) else None
        require(
            isinstance(element_id, (str, int)) and not isinstance(element_id, bool) and str(element_id) != "",
            f"{name} entries need an element_id",
        )
        ids.append(str(element_id))
    return ids


def check_shots(shots: Any, total_duration: int, name: str = "multi_prompt") -> list[dict[str, Any]]:
    """1-6 shots, prompts ≤ 512 chars, durations (strings of integers) ≥ 1 summing to the total."""
    require(isinstance(shots, list) and len(shots) >= 1, f"{name} must be a non-empty array")
    assert isinstance(shots, list)
    require(len(shots) <= MAX_SHOTS, f"{name} supports at most {MAX_SHOTS} shots")
    total = 0
    for position, shot in enumerate(shots, start=1):
        require(isinstance(shot, dict), f"{name}[{position}] must be an object")
        prompt = shot.get("prompt")
        require(isinstance(prompt, str) and prompt.strip() != "", f"{name}[{position}].prompt is required")
        require(
            len(prompt) <= MAX_SHOT_PROMPT, f"{name}[{position}].prompt exceeds {MAX_SHOT_PROMPT} characters"
        )
        duration = shot.get("duration")
        require(
            isinstance(duration, str) and duration.isdigit(),
            f'{name}[{position}].duration must be a string of an integer, e.g. "3"',
        )
        seconds = int(duration)
        require(
            1 <= seconds <= total_duration,
            f"{name}[{position}].duration must be between 1 and the total duration",
        )
        total += seconds
    require(
        total == total_duration,
        f"the durations in {name} add up to {total}, but the video duration is {total_duration}",
    )
    return shots


def check_watermark(value: Any, name: str) -> None:
    """`watermark_info`, when given, is `{"enabled": bool}`."""
    require(
        value is None or (isinstance(value, dict) and isinstance(value.get("enabled", False), bool)),
        f"{name} must be {{'enabled': bool}}",
    )


def check_reference_counts(images: int, elements: int, has_video: bool, has_first_frame: bool) -> None:
    """images + elements ≤ 7 (≤ 4 with a video); ≤ 3 elements with a first frame."""
    limit = 4 if has_video else 7
    require(
        images + elements <= limit,
        f"images plus elements must not exceed {limit}{' with a reference video' if has_video else ''}",
    )
    require(not (has_first_frame and elements > 3), "at most 3 elements are supported with a first frame")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_callback_url(url: Any) -> str | None:
    """A callback URL EvoLink accepts: HTTPS, public host, ≤ 2048 chars.

    Loopback hosts are accepted over plain HTTP too: the local stack listens on 127.0.0.1 and the
    simulator runs beside it (a real gateway would refuse them).
    """
    if url is None:
        return None
    require(isinstance(url, str) and url != "", "callback_url must be a string")
    assert isinstance(url, str)
    require(len(url) <= MAX_CALLBACK_URL, f"callback_url must not exceed {MAX_CALLBACK_URL} characters")
    parts = urlsplit(url)
    host = parts.hostname or ""
    require(parts.scheme in ("http", "https") and host != "", "callback_url must be an absolute URL")
    if _is_loopback(host):
        return url
    require(parts.scheme == "https", "callback_url must use HTTPS")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url
    require(address.is_global, "callback_url must not point to an internal address")
    return url
