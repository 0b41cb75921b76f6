"""The `sam build` output as Lambda mounts it: a function's folder (/var/task) before the layer's
`python/` (/opt/python). Shared by the build tests (tests/build) and the cold-import benchmark (bench/).

The build is arm64 and this machine may not be: extension modules (`.so`) of the build cannot load on
x86_64, so to import the build here, the same pinned distributions that carry extensions are installed as
wheels for this machine (`install_host_extensions`) and put in front of the layer. Everything else,
kling_pipeline and its .pyc included, is the build's.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from kling_local.stack.template import Template


def built_template(build_dir: Path) -> dict[str, Any]:
    return Template.load(build_dir / "template.yaml").body


def functions(build_dir: Path) -> dict[str, dict[str, Any]]:
    """Each function's properties in the built template (`CodeUri` is its folder in the build)."""
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in built_template(build_dir)["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def layer_python(build_dir: Path) -> Path:
    layer = built_template(build_dir)["Resources"]["CoreLayer"]["Properties"]["ContentUri"]
    return build_dir / str(layer) / "python"


def requirement_blocks(requirements: Path) -> dict[str, str]:
    """`name==version --hash=...` blocks of a uv-exported requirements file, by normalized name."""
    blocks: dict[str, str] = {}
    for block in requirements.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        line = block.strip()
        if line and not line.startswith("#"):
            blocks[line.split("==", 1)[0].lower().replace("_", "-")] = line
    return blocks


def distributions_with_extensions(layer: Path) -> list[str]:
    names = []
    for record in layer.glob("*.dist-info/RECORD"):
        if any(".so" in row.split(",", 1)[0] for row in record.read_text(encoding="utf-8").splitlines()):
            names.append(
                record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("_", "-")
            )
    return sorted(names)


def install_host_extensions(layer: Path, requirements: Path, target: Path) -> Path | None:
    """This machine's wheels of the layer's distributions that carry extension modules (same pins and
    hashes) in `target/site`; None on arm64, where the build's own extensions load."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return None
    blocks = requirement_blocks(requirements)
    wanted = distributions_with_extensions(layer)
    if not wanted:
        raise RuntimeError("no distribution in the layer ships an extension module: pydantic-core should")
    target.mkdir(parents=True, exist_ok=True)
    pinned = target / "requirements.txt"
    pinned.write_text("\n".join(blocks[name] for name in wanted) + "\n", encoding="utf-8")
    subprocess.run(  # noqa: S603 - our own interpreter, pip, pinned and hash-checked requirements
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--require-hashes", "--only-binary=:all:", "--target", str(target / "site"), "-r", str(pinned)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    return target / "site"
