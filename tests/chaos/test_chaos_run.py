"""The reduced, seeded chaos run of `make test` (`make chaos` runs the full one; see docs/reliability.md).

Everything at once on the local stack in child processes: 10% of the handlers' AWS calls fail (500,
throttling, timeouts, answers dropped after AWS applied the call), handlers crash right after each kind of
mutating AWS call, the stack is SIGKILLed and restarted mid-run, and the provider simulator loses create
answers, answers 5xx/429, drops, duplicates and reorders callbacks, cuts downloads, expires links and
fails tasks. Then every generation is accounted for: each must-be-zero number is asserted.
"""

from __future__ import annotations

import json

import pytest

from kling_local.chaos.run import ChaosConfig, ChaosRun

pytestmark = [pytest.mark.timeout(600), pytest.mark.chaos_run]


def test_every_generation_is_accounted_for_under_every_fault_at_once() -> None:
    config = ChaosConfig(generations=40, rate_per_s=5.0, seed=12, stack_kills=1, aws_fault_rate=0.1)
    run = ChaosRun(config)
    accounting = run.run()
    print(accounting.table())
    print("stack logs and crash log:", run.workdir)
    details = json.dumps(accounting.details, indent=1, default=str)[:60000]
    assert accounting.violations == {}, details
    counts = accounting.counts
    print("refused creates:", accounting.details["refused_create_answers"])
    assert counts["generations_accepted"] == 40
    assert counts["stack_kills"] == 1
    assert counts["handler_crashes_injected"] > 0
    assert sum(counts["aws_faults_injected"].values()) > 0
    assert counts["final_state"].get("succeeded", 0) > 0
