"""Ingest: a block's response(s) in, the contract's tables out, as Arrow; pure functions.

`flatten.flatten` validates every value against the schema registry on the way, so a value that
does not fit never reaches the lake; `summary.snapshot_summary` condenses a snapshot's metrics for
the Dagster UI; `target_constraints.constraints_tables` flattens a project's target devices and
application budgets. Import from those modules.
"""
