"""The variants schedule's workflow: one bounded run of the judging activity, which
decides winners on replies and refreshes the figures per variant (docs/decisions/0052)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.maintenance_models import VariantsInput, VariantsResult
    from config.names import JUDGE_VARIANTS
    from workflows.maintenance import run_bounded


@workflow.defn
class VariantsWorkflow:
    @workflow.run
    async def run(self, inp: VariantsInput) -> VariantsResult:
        return await run_bounded(JUDGE_VARIANTS, inp, VariantsResult)
