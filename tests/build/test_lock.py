"""One lock (uv.lock, hashes included) behind both the tests' venv and the Lambda layer.

`make venv` installs uv.lock as is (`uv sync --frozen`); the layer installs layers/core/requirements.txt,
which `make lock` exports from the same lock. These tests fail when either drifts: a pyproject.toml edit
without `make lock`, or a hand-edited requirements file.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.build.conftest import ROOT

UV = Path(sys.executable).parent / "uv"
LAYER_REQUIREMENTS = ROOT / "layers" / "core" / "requirements.txt"


def _requirements(text: str) -> list[str]:
    """Requirement lines (with their hashes), comments and the generated header dropped."""
    lines = text.replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _uv(*args: str, project: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(UV), *args, "--project", str(project)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "project", [ROOT, ROOT / "tools" / "sam", ROOT / "tools" / "checkov"], ids=["project", "sam", "checkov"]
)
def test_the_lock_matches_pyproject(project: Path) -> None:
    result = _uv("lock", "--check", "--offline", "--python", sys.executable, project=project)
    assert result.returncode == 0, (
        f"uv.lock is stale: run `make lock` (`uv lock` adds only what changed)\n{result.stderr}"
    )


def test_the_layer_requirements_are_the_locks_runtime_dependencies() -> None:
    exported = _uv("export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements-txt")
    assert exported.returncode == 0, exported.stderr
    assert _requirements(LAYER_REQUIREMENTS.read_text(encoding="utf-8")) == _requirements(exported.stdout), (
        "layers/core/requirements.txt differs from uv.lock: run `make lock`"
    )


def test_every_layer_requirement_is_pinned_with_hashes() -> None:
    requirements = _requirements(LAYER_REQUIREMENTS.read_text(encoding="utf-8"))
    assert requirements
    for requirement in requirements:
        assert "==" in requirement.split()[0], requirement
        assert "--hash=sha256:" in requirement, requirement


def test_the_layer_carries_every_runtime_dependency_and_nothing_of_dev() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    names = {line.split("==")[0] for line in _requirements(LAYER_REQUIREMENTS.read_text(encoding="utf-8"))}
    runtime = {canonicalize_name(Requirement(spec).name) for spec in pyproject["project"]["dependencies"]}
    assert runtime <= names
    for dev_only in ("pytest", "moto", "mypy", "uv"):
        assert dev_only not in names
