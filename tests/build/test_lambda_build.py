"""The deployable artifact, inspected and imported the way Lambda runs it.

Lambda mounts a function's zip at /var/task and its layer at /opt (both read-only) and puts
`/var/task`, then `/opt/python`, on `sys.path`. Each handler is imported here from the `sam build` output
laid out that way, in a fresh CPython 3.12 that sees no site-packages (`-I -S`), with the function's
environment from the template — so a module missing from the layer, a handler name that does not resolve
or an import that needs a variable the template does not set fails here, not at the first cold start.

The build is arm64 and this machine may not be: for the import only, the layer's distributions that carry
extension modules are put in front of it as wheels for this machine (kling_local.lambda_build).
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kling_local.lambda_build import functions as _functions
from kling_local.lambda_build import install_host_extensions
from kling_local.lambda_build import layer_python as _layer_python
from kling_local.stack.intrinsics import Resolver, StackContext
from kling_local.stack.lambdas import function_specs
from kling_local.stack.template import Template
from tests.build.conftest import ROOT

EM_AARCH64 = 183  # ELF e_machine of arm64
PYC_UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source not checked

# Runs inside the simulated Lambda interpreter: records every module compiled from source under the
# build (a read-only /opt or /var/task could not cache it: paid again at every cold start), then imports
# the handler.
_IMPORT_PROBE = """
import importlib, importlib.machinery, json, sys
build_roots, module_name, attribute, never = json.loads(sys.argv[1])
compiled = []
_source_to_code = importlib.machinery.SourceFileLoader.source_to_code
def _spy(self, data, path, *args, **kwargs):
    if any(str(path).startswith(root) for root in build_roots):
        compiled.append(str(path))
    return _source_to_code(self, data, path, *args, **kwargs)
importlib.machinery.SourceFileLoader.source_to_code = _spy
handler = getattr(importlib.import_module(module_name), attribute)
from_build = sorted({m.__file__ for m in list(sys.modules.values())
                     if getattr(m, "__file__", None) and m.__file__.startswith(tuple(build_roots))})
print(json.dumps({"callable": callable(handler), "compiled_from_source": compiled,
                  "modules_from_build": len(from_build),
                  "never_at_import": sorted(name for name in sys.modules if name.startswith(tuple(never)))}))
"""


# Packages no handler may load at import: what they cost a cold start buys nothing on the handler's path
# there (bench/cold_import.py measures it). The batch utility and the parser: kling_pipeline.batch and
# messages replace them; OpenAPI models: only `/openapi.json` and `/docs` (functions/api/app.py);
# idempotency: only a keyed create (services/idempotency.py); pydantic-settings: config.py.
NEVER_AT_IMPORT = (
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.event_handler.openapi.models",
    "pydantic_settings",
)


def _template_environments() -> dict[str, dict[str, str]]:
    """Each function's variables as CloudFormation would set them (Globals + its own), names made up."""
    template = Template.load(ROOT / "template.yaml")
    resolver = Resolver(
        template,
        StackContext(stack_name="kling-pipeline", region="us-east-1", aws_endpoint_url="http://127.0.0.1:9"),
    )
    return {spec.logical_id: spec.environment for spec in function_specs(template, resolver)}


@pytest.fixture(scope="module")
def host_extensions(sam_build: Path, build_scratch: Path) -> Path | None:
    """This machine's wheels of the layer's distributions that carry extension modules (same pins, hashes)."""
    return install_host_extensions(
        _layer_python(sam_build),
        ROOT / "layers" / "core" / "requirements.txt",
        build_scratch / "host-extensions",
    )


def test_every_extension_module_in_the_build_is_aarch64(sam_build: Path) -> None:
    shared_objects = [path for path in sam_build.rglob("*.so*") if path.is_file()]
    assert any("pydantic_core" in str(path) for path in shared_objects), "pydantic-core's extension missing"
    wrong = {}
    for path in shared_objects:
        header = path.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
        ei_class, ei_data = header[4], header[5]
        (machine,) = struct.unpack("<H" if ei_data == 1 else ">H", header[18:20])
        if ei_class != 2 or machine != EM_AARCH64:
            wrong[str(path.relative_to(sam_build))] = (ei_class, machine)
    assert wrong == {}, f"not 64-bit aarch64 (EI_CLASS, e_machine): {wrong}"


def test_the_layer_and_every_function_ship_unchecked_bytecode_for_python312(sam_build: Path) -> None:
    roots = [_layer_python(sam_build)] + [
        sam_build / props["CodeUri"] for props in _functions(sam_build).values()
    ]
    missing, stale = [], []
    for root in roots:
        sources = list(root.rglob("*.py"))
        assert sources, f"{root} has no Python source"
        for source in sources:
            pyc = Path(importlib.util.cache_from_source(str(source)))
            if not pyc.exists():
                missing.append(str(source.relative_to(sam_build)))
                continue
            header = pyc.read_bytes()[:8]
            (flags,) = struct.unpack("<I", header[4:8])
            if header[:4] != importlib.util.MAGIC_NUMBER or flags != PYC_UNCHECKED_HASH:
                stale.append(str(pyc.relative_to(sam_build)))
    assert missing == [], f"{len(missing)} modules without .pyc, e.g. {missing[:5]}"
    assert stale == [], f"{len(stale)} .pyc not unchecked-hash for this Python, e.g. {stale[:5]}"


def test_kling_pipeline_is_in_the_layer_with_its_data_files(sam_build: Path) -> None:
    package = _layer_python(sam_build) / "kling_pipeline"
    assert (package / "domain" / "pricing.json").is_file()
    assert not (_layer_python(sam_build) / "bin").exists(), "console scripts have no place in a layer"


def test_every_handler_imports_from_the_build_as_lambda_mounts_it_without_compiling(
    sam_build: Path, host_extensions: Path | None
) -> None:
    functions = _functions(sam_build)
    environments = _template_environments()
    assert set(functions) == set(environments)
    layer_python = _layer_python(sam_build)
    for logical_id, props in sorted(functions.items()):
        task_root = sam_build / props["CodeUri"]
        module_name, _, attribute = props["Handler"].rpartition(".")
        search_path = [
            str(task_root),
            *([str(host_extensions)] if host_extensions else []),
            str(layer_python),
        ]
        env = {
            "PATH": os.environ.get("PATH", ""),
            **environments[logical_id],
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props.get("MemorySize", 256)),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": props["Handler"],
            # Credentials and an endpoint nobody answers: an import that calls AWS fails fast here.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        }
        bootstrap = f"import sys; sys.path[:0] = {search_path!r}; exec({_IMPORT_PROBE!r})"
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-B", "-c", bootstrap,
             json.dumps([[str(layer_python), str(task_root)], module_name, attribute, NEVER_AT_IMPORT])],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{logical_id} ({props['Handler']}) does not import:\n{result.stderr}"
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["callable"], f"{logical_id}: {props['Handler']} is not callable"
        assert report["modules_from_build"] > 20, f"{logical_id}: the layer was not used"
        assert report["never_at_import"] == [], f"{logical_id} loads {report['never_at_import']} at import"
        assert report["compiled_from_source"] == [], (
            f"{logical_id} compiled {len(report['compiled_from_source'])} modules at import "
            f"(no usable .pyc), e.g. {report['compiled_from_source'][:5]}"
        )
