"""ltv_core: the LTV pipeline's stages, usable from Airflow, the CLI or a notebook."""

import os

# Before any OpenMP runtime loads (LightGBM's, scikit-learn's): idle OpenMP threads sleep instead of
# spinning, so a busy core does not stall the others (ltv_core/threads.py; an explicit value wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
