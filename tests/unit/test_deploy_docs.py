"""docs/deploy.md and samconfig.toml are enough for a first deploy: every parameter documented, and the
committed samconfig.toml deploys without questions under a stack name the template accepts."""

from __future__ import annotations

import re
import tomllib

from kling_local.stack.template import Template
from tests.conftest import ROOT

TEMPLATE = Template.load(ROOT / "template.yaml")
DEPLOY_DOC = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))


def _parameter_table() -> str:
    start = DEPLOY_DOC.index("### Parameters")
    return DEPLOY_DOC[start : DEPLOY_DOC.index("\n## ", start)]


def test_every_template_parameter_is_in_the_deploy_guide() -> None:
    table = _parameter_table()
    documented = set(re.findall(r"^\| `(\w+)`(?: / `(\w+)`)?", table, flags=re.MULTILINE))
    names = {name for pair in documented for name in pair if name}
    assert set(TEMPLATE.parameters) - names == set(), "add them to docs/deploy.md's parameter table"


def test_samconfig_deploys_without_questions() -> None:
    deploy = SAMCONFIG["default"]["deploy"]["parameters"]
    assert deploy["confirm_changeset"] is False
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert deploy["resolve_s3"] is True


def test_samconfig_stack_name_is_the_deployment_name_the_template_accepts() -> None:
    stack_name = SAMCONFIG["default"]["global"]["parameters"]["stack_name"]
    overrides = dict(
        item.split("=", 1)
        for item in SAMCONFIG["default"]["deploy"]["parameters"]["parameter_overrides"].split()
    )
    assert overrides["DeploymentName"] == stack_name
    assert re.fullmatch(TEMPLATE.parameters["DeploymentName"]["AllowedPattern"], stack_name)
    assert set(overrides) <= set(TEMPLATE.parameters)


def test_the_guide_covers_a_first_deploy_end_to_end() -> None:
    for must in (
        "python3.12",
        "AWS CLI",
        "SAM CLI",
        "make build",
        "make deploy",
        "iam:PassRole",
        "ROLLBACK_COMPLETE",
        "object_versions.delete()",
        "put-secret-value",
    ):
        assert must in DEPLOY_DOC, must
