"""One module per DAG task, each with one entry ``run(ctx) -> dict``: it reads its inputs from the
store, calls pure code, writes its outputs and commits its manifest (all of a stage's I/O and
policy lives in its module).

The package imports none of them: a DAG task or a Dask worker imports only its own stage's module
(and what that needs), not the whole stack. ``ltv_core.inprocess`` runs them one after the other
in this process (CLI, notebooks, tests).
"""
