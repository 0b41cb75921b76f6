"""`kling-pipeline` client commands run as a user runs them: a subprocess, configured by environment
variables (or the local stack's state file), judged by exit code, output and the downloaded file."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kling_local.demo import png
from kling_local.stack.runner import LocalStack

from .conftest import KEY_A

pytestmark = pytest.mark.integration

COMMAND = str(Path(sys.executable).parent / "kling-pipeline")


def cli(
    *args: str,
    stack: LocalStack,
    key: str = KEY_A,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KLING_PIPELINE_")},
        "KLING_PIPELINE_URL": stack.api_url,
        "KLING_PIPELINE_API_KEY": key,
        **(env or {}),
    }
    environment = {k: v for k, v in environment.items() if v}
    return subprocess.run(
        [COMMAND, *args], capture_output=True, text=True, env=environment, cwd=cwd, timeout=120, check=False
    )


def test_submit_uploads_a_local_file_waits_and_downloads_a_verified_video(
    stack: LocalStack, sim: Any, tmp_path: Path
) -> None:
    image = tmp_path / "face.png"
    image.write_bytes(png(640, 960))
    out = tmp_path / "videos"

    done = cli(
        "submit", "--mode", "image-to-video", "--prompt", "She turns and smiles", "--first-frame", str(image),
        "--duration", "3", "--metadata", "campaign=cli", "--wait", "--download", str(out), "--json",
        stack=stack,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert result["request"]["first_frame"].startswith("s3://")
    assert result["metadata"] == {"campaign": "cli"}
    [saved] = result["downloaded"]
    record = json.loads(cli("get", result["id"], "--json", stack=stack).stdout)
    assert hashlib.sha256(Path(saved).read_bytes()).hexdigest() == record["outputs"][0]["sha256"]


def test_wait_prints_plain_progress_lines_when_not_a_terminal(stack: LocalStack, sim: Any) -> None:
    done = cli(
        "submit", "--mode", "text-to-video", "--shot", "2:Wide shot of a harbour", "--shot", "1:A gull",
        "--duration", "3", "--wait", stack=stack,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("submitted gen_")
    assert any(" succeeded" in line and line.startswith("[") for line in lines), lines
    assert "\x1b[" not in done.stderr  # no terminal control codes in a pipe
    assert "succeeded" in done.stdout and "sha256" in done.stdout


def test_a_failed_generation_exits_4_with_its_error(stack: LocalStack, sim: Any) -> None:
    done = cli(
        "submit", "--mode", "text-to-video", "--prompt", "A doomed scene [sim:fail]", "--wait", stack=stack
    )
    assert done.returncode == 4, done.stderr
    assert "error" in done.stdout


def test_cancel_then_wait_exits_5_and_a_short_wait_exits_6(stack: LocalStack, sim: Any) -> None:
    sim.config = sim.config.model_copy(update={"generation_time_s": 30.0})
    created = json.loads(
        cli("submit", "--mode", "text-to-video", "--prompt", "Slow", "--json", stack=stack).stdout
    )

    timed_out = cli("wait", created["id"], "--timeout", "1", stack=stack)
    assert timed_out.returncode == 6, timed_out.stderr
    assert cli("cancel", created["id"], stack=stack).returncode == 0
    assert cli("wait", created["id"], stack=stack).returncode == 5


def test_invalid_input_auth_and_not_found_have_their_exit_codes(stack: LocalStack, sim: Any) -> None:
    invalid = cli("submit", "--mode", "text-to-video", "--prompt", "x", "--duration", "99", stack=stack)
    assert invalid.returncode == 2
    assert "duration:" in invalid.stderr
    assert cli("get", "gen_nope", stack=stack, key="wrong-key").returncode == 3
    assert cli("get", "gen_nope", stack=stack).returncode == 7
    missing_file = cli("submit", "--mode", "image-to-video", "--first-frame", "nope.png", stack=stack)
    assert missing_file.returncode == 2 and "no such file" in missing_file.stderr


def test_without_environment_the_running_stack_state_file_is_used(stack: LocalStack, tmp_path: Path) -> None:
    stack.write_state_file(tmp_path / ".local" / "stack.json")
    listed = cli(
        "list", "--limit", "2", "--json", stack=stack, cwd=tmp_path,
        env={"KLING_PIPELINE_URL": "", "KLING_PIPELINE_API_KEY": ""},
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "items" in json.loads(listed.stdout)
    unconfigured = cli(
        "list",
        stack=stack,
        cwd=tmp_path / ".local",
        env={"KLING_PIPELINE_URL": "", "KLING_PIPELINE_API_KEY": ""},
    )
    assert unconfigured.returncode == 2 and "KLING_PIPELINE_URL" in unconfigured.stderr


def test_estimate_shows_the_chosen_provider(stack: LocalStack) -> None:
    done = cli(
        "estimate", "--mode", "text-to-video", "--prompt", "x", "--duration", "5", "--json", stack=stack
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chosen"]
