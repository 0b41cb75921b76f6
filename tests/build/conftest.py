"""One real `sam build` per test session, shared by every test of the deployable artifact.

The build is what `make build` / `make deploy` ship: `template.yaml` with `BuildMethod: makefile`
(build/Makefile), arm64 wheels from the lock, bytecode compiled by CPython 3.12. It runs into a fresh
temporary folder (never `.aws-sam/`, which may hold the developer's own build) once per session. That
folder is a `tempfile` one, not pytest's `tmp_path_factory`: pytest prunes old numbered folders under one
shared root, and a concurrent pytest session (another checkout on the same machine) ending would prune
this session's build while it is still being imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SAM = ROOT / ".tools" / "sam" / "bin" / "sam"  # its own environment and lock (tools/sam, make venv)

# The Lambda runtime is python3.12: the bytecode in the build is for 3.12 and the import test runs it.


def sam_environment() -> dict[str, str]:
    """The venv first on PATH (its python3.12 when pyenv has none, see build/python312.mk); no telemetry."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["SAM_CLI_TELEMETRY"] = "0"
    return env


@pytest.fixture(scope="session")
def build_scratch() -> Iterator[Path]:
    """A private temporary folder for this session's build artefacts (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="kling-build-test-") as scratch:
        yield Path(scratch)


@pytest.fixture(scope="session")
def sam_build(build_scratch: Path) -> Path:
    """`sam build` of the real template; the build folder (`<dir>/template.yaml` + one folder per resource)."""
    if sys.version_info[:2] != (3, 12):
        pytest.skip("the Lambda build targets CPython 3.12 (make venv uses pyenv's 3.12)")
    build_dir = build_scratch / "sam" / "build"
    result = subprocess.run(
        [
            str(SAM),
            "build",
            "--template-file",
            str(ROOT / "template.yaml"),
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(build_dir.parent / "cache"),
        ],
        cwd=ROOT,
        env=sam_environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"sam build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return build_dir
