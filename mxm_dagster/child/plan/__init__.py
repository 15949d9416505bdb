"""One SQLMesh execution: decide, then do, then audit (docs/adr/0022), as SQLMesh's own `plan/`
keeps its builder, frozen plan and evaluator apart.

`planner` decides from the request and a few reads of SQLMesh's state (`state_reads`) what will
be done: an `ExecutionPlan` (`execution_plan`), built on `decision`'s SQLMesh call and printable
and testable without a Context. `executor` does exactly that (re-planning around failures) while
`early_reports` passes on each model SQLMesh finishes; `collect` turns what was done and recorded
into each model's outcome (with `outcomes`), and `audit_pass` audits the current data of the
models the plan named and the outcomes found up to date. `execution` runs the four in order;
`preview` builds the plan a run would apply without applying it.
"""
