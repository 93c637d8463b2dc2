"""What a task or a Dask worker imports: only what its stage needs. A Dask worker that stages raw
partitions, the DAG file and the run context must not pull in the modelling stack (each such
import costs seconds per fresh process: every task of a LocalExecutor, every LocalCluster worker)."""

import json
import subprocess
import sys

import pytest

HEAVY = ("lightgbm", "sklearn", "matplotlib", "great_expectations", "distributed")


def _imported_after(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in json.loads(out.strip().splitlines()[-1])}


@pytest.mark.parametrize("module, allowed", [
    ("ltv_core.params", ()),                 # the DAG file's Params
    ("ltv_core.pipeline", ()),
    ("ltv_core.context", ()),                # every task's context
    ("ltv_core.models.config", ()),          # reading config/models.yaml
    ("ltv_core.ingest", ()),                 # ingest's Dask worker task
    ("ltv_core.stages", ()),                 # the package imports none of its stage modules
    ("ltv_core.drift", ()),                  # the drift statistics: numpy, pandas, scipy only
    ("ltv_core.stages.build_features", ("distributed",)),
])
def test_light_modules_import_no_modelling_stack(module, allowed):
    heavy = _imported_after(module) & (set(HEAVY) - set(allowed))
    assert not heavy, f"importing {module} imports {sorted(heavy)}"
