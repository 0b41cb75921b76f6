"""Write the results table of bench/README.md from bench/results/*.json (the last step of `make bench`).

Only the part between the two markers is rewritten; the prose around it is kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results"
README = HERE / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _load(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    return result


def _check(ok: bool) -> str:
    return "yes" if ok else "**no**"


def table() -> str:
    cold_import = _load("cold_import")
    cold = cold_import["handlers"]
    per = _load("per_generation")
    cost = _load("cost")
    ingest = _load("ingest_memory")
    on_time, lost = per["callback_on_time"], per["callback_lost"]
    worst_bytecode = max(row["bytecode"]["ratio"] for row in cold.values())
    worst_source = max(row["source"]["ratio"] for row in cold.values())
    worst_traced = max(row["bytecode"].get("tracing_on_ratio", 0) for row in cold.values())
    on_time_usd = cost["scenarios"]["callback_on_time"]["usd_per_1000_videos"]
    lost_usd = cost["scenarios"]["callback_lost"]["usd_per_1000_videos"]
    runs = {run["size_mib"]: run for run in ingest["runs"]}
    small, large = runs[min(runs)], runs[max(runs)]
    worst_ingest = max(run["ratio_to_upload_file"] for run in runs.values())
    growth = large["rss_added_mib"] - small["rss_added_mib"]
    rows = [
        ("what", "measured", "target", "holds"),
        ("---", "---", "---", "---"),
        (
            "cold import with bytecode, worst handler vs its floor",
            f"{worst_bytecode:.2f}x (tracing on: {worst_traced:.2f}x)",
            "≤ 1.10x",
            _check(worst_bytecode <= 1.10),
        ),
        ("cold import from source, worst handler vs its floor", f"{worst_source:.2f}x", "—", "—"),
        (
            "state transitions per generation, callback on time / lost",
            f"{on_time['state_transitions']} / {lost['state_transitions']}",
            "0 on time",
            _check(on_time["state_transitions"] == 0),
        ),
        (
            "AWS calls per generation, callback on time / lost (+ the client's GET)",
            f"{on_time['aws_calls_total']} / {lost['aws_calls_total']}"
            f" (+{sum(on_time['client_status_read_calls'].values())})",
            "≤ 14 on time",
            _check(on_time["aws_calls_total"] <= 14),
        ),
        (
            f"USD per 1,000 five-second videos (prices {cost['prices_as_of']}), on time / lost",
            f"${on_time_usd:.4f} / ${lost_usd:.4f}",
            "≤ $0.05 on time",
            _check(on_time_usd <= 0.05),
        ),
        (
            "ingest time vs moto `upload_file` of the same bytes, worst size",
            f"{worst_ingest:.2f}x",
            "≤ 1.3x",
            _check(worst_ingest <= 1.3),
        ),
        (
            f"ingest peak RSS added at {small['size_mib']} / {large['size_mib']} MiB",
            f"+{small['rss_added_mib']:.1f} / +{large['rss_added_mib']:.1f} MiB (growth {growth:+.1f})",
            "≤ 64 at 512, growth ≤ 16",
            _check(large["rss_added_mib"] <= 64 and growth <= 16),
        ),
    ]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "Cold import per handler (median CPU ms of a fresh interpreter, handler / floor):", ""]
    lines += [
        "| handler | source | bytecode | bytecode, tracing on | floor + one pydantic model |",
        "|---|---|---|---|---|",
    ]
    for name, row in cold.items():
        src, byc = row["source"], row["bytecode"]
        lines.append(
            f"| {name} | {src['handler_ms']} / {src['floor_ms']} = {src['ratio']:.2f}x "
            f"| {byc['handler_ms']} / {byc['floor_ms']} = {byc['ratio']:.2f}x "
            f"| {byc.get('tracing_on_ms', '—')} ms = {byc.get('tracing_on_ratio', 0):.2f}x "
            f"| {byc.get('model_floor_ms', '—')} ms = {byc.get('model_floor_ratio', 0):.2f}x |"
        )
    if first := cold_import.get("api_first_requests"):
        lines += [
            "",
            f"api cold start plus its first request (bytecode; reported, not a target): GET a generation "
            f"{first['first_get_ms']} ms = {first['first_get_ratio']:.2f}x, POST a create "
            f"{first['first_post_ms']} ms = {first['first_post_ratio']:.2f}x of the floor "
            f"({first['floor_ms']} ms).",
        ]
    return "\n".join(lines)


def main() -> None:
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    main()
