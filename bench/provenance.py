"""Where a committed benchmark result came from: the command, the time, the commit and the machine."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from typing import Any


def provenance(command: str, *, machine_note: str = "") -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    machine = f"{platform.machine()}, python {platform.python_version()}{machine_note}"
    return {
        "command": command,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": machine,
    }
