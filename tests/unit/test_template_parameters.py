"""Settings a user tunes are stack parameters (issue 11, "smaller things"): each parameter reaches the
functions as the environment variable `Settings` reads, and its default parses to the code's default."""

from __future__ import annotations

from pathlib import Path

import pytest

from kling_local.stack.template import Template
from kling_pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("parameter", "variable", "field"),
    [
        ("SubmitRetryBaseSeconds", "SUBMIT_RETRY_BASE_S", "submit_retry_base_s"),
        ("SubmitRetryMaxSeconds", "SUBMIT_RETRY_MAX_S", "submit_retry_max_s"),
        ("WebhookRetryScheduleSeconds", "WEBHOOK_RETRY_SCHEDULE_S", "webhook_retry_schedule_s"),
        ("MaxOutputBytes", "MAX_OUTPUT_BYTES", "max_output_bytes"),
    ],
)
def test_a_tunable_setting_is_a_stack_parameter_with_the_codes_default(
    parameter: str, variable: str, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = Template.load(ROOT / "template.yaml")
    variables = template.body["Globals"]["Function"]["Environment"]["Variables"]
    assert variables[variable] == {"Ref": parameter}

    default = template.body["Parameters"][parameter]["Default"]
    monkeypatch.setenv(variable, str(default))
    assert getattr(Settings(), field) == Settings.model_fields[field].default
