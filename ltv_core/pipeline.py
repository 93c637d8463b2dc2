"""The pipeline's registry: its stages, in order, what each one reads, and the splits of a run.

Every other module names a stage or a split through this module, never as a string literal of its
own. ``INPUTS`` is the data-dependency graph: the stages whose committed artefacts a stage reads.
The DAG's edges are exactly these (``tests/dags/test_dag.py::test_edges_are_the_declared_inputs``),
and they are what the stages really read when they run
(``tests/integration/test_stages.py::test_each_stage_reads_exactly_its_declared_inputs``).
"""

from __future__ import annotations

from enum import StrEnum

from ltv_core.errors import SpecError

DAG_ID = "ltv_daily"


class _Name(StrEnum):
    """A name that prints as itself, in messages too (``{stage!r}`` -> ``'validate'``)."""

    def __repr__(self) -> str:
        return repr(self.value)


class Stage(_Name):
    """A stage of a run: one DAG task, one module under ``ltv_core.stages``, one folder
    ``runs/<run_id>/<stage>/`` in the store."""

    INGEST = "ingest"
    VALIDATE = "validate"
    BUILD_FEATURES = "build_features"
    RESAMPLE = "resample"
    TRAIN_CLASSIFIER = "train_classifier"
    TRAIN_REGRESSOR = "train_regressor"
    TRAIN_BASELINES = "train_baselines"
    FIT_STACKER = "fit_stacker"
    OPTIMIZE_GATE = "optimize_gate"
    EVALUATE = "evaluate"
    DRIFT = "drift"
    PROMOTE = "promote"
    SCORE = "score"


class Split(_Name):
    """The four time-ordered windows of a run (``ltv_core.windows``)."""

    TRAIN = "train"            # fits every model and the feature state
    VALIDATION = "validation"  # early stopping, calibration, the stacker / gate choices
    HOLDOUT = "holdout"        # reporting and promotion only
    SCORING = "scoring"        # unlabelled rows to predict


S = Stage
STAGES: tuple[Stage, ...] = tuple(Stage)  # the order a run goes through them (CLI ``run``)
SPLITS: tuple[Split, ...] = tuple(Split)
LABELLED: tuple[Split, ...] = (Split.TRAIN, Split.VALIDATION, Split.HOLDOUT)
TRAINING_STAGES: tuple[Stage, ...] = (S.RESAMPLE, S.TRAIN_CLASSIFIER, S.TRAIN_REGRESSOR, S.TRAIN_BASELINES,
                                      S.FIT_STACKER, S.OPTIMIZE_GATE)
# Stages a run must commit before its model may be promoted.
REQUIRED_STAGES: tuple[Stage, ...] = (S.INGEST, S.VALIDATE, S.BUILD_FEATURES, *TRAINING_STAGES, S.EVALUATE)
# Stages promote reads but never waits for: a run whose drift failed or was flagged still promotes
# (and scores); promote records the drift verdict in its manifest.
ADVISORY_STAGES: tuple[Stage, ...] = (S.DRIFT,)
# The folder the promote stage writes the run's HTML report to, beside its own (UI links to it).
REPORT_DIR = "report"

# What each stage reads: the stages whose committed output it consumes. ``promote`` reads every
# required stage (it records which ones failed) and the advisory drift verdict; ``score`` reads the
# champion pointer that this run's ``promote`` may have switched, and the models of whichever run it
# names.
INPUTS: dict[Stage, tuple[Stage, ...]] = {
    S.INGEST: (),
    S.VALIDATE: (S.INGEST,),
    S.BUILD_FEATURES: (S.INGEST, S.VALIDATE),
    S.RESAMPLE: (S.BUILD_FEATURES,),
    S.TRAIN_CLASSIFIER: (S.BUILD_FEATURES, S.RESAMPLE),
    S.TRAIN_REGRESSOR: (S.BUILD_FEATURES, S.RESAMPLE),
    S.TRAIN_BASELINES: (S.BUILD_FEATURES,),
    S.FIT_STACKER: (S.BUILD_FEATURES, S.TRAIN_CLASSIFIER, S.TRAIN_REGRESSOR, S.TRAIN_BASELINES),
    S.OPTIMIZE_GATE: (S.BUILD_FEATURES, S.TRAIN_CLASSIFIER, S.TRAIN_REGRESSOR, S.FIT_STACKER),
    S.EVALUATE: (S.INGEST, S.BUILD_FEATURES, S.TRAIN_CLASSIFIER, S.TRAIN_REGRESSOR, S.TRAIN_BASELINES,
                 S.FIT_STACKER, S.OPTIMIZE_GATE),
    # drift: the scoring window's features (raw values too) against the training window's, and the
    # predictions of this run's stack (the champion's are of another run)
    S.DRIFT: (S.INGEST, S.BUILD_FEATURES, S.TRAIN_CLASSIFIER, S.TRAIN_REGRESSOR, S.FIT_STACKER, S.OPTIMIZE_GATE),
    S.PROMOTE: (*REQUIRED_STAGES, *ADVISORY_STAGES),
    S.SCORE: (S.INGEST, S.VALIDATE, S.PROMOTE),
}
# Stages that run whatever happened upstream (Airflow's all_done): promote records a failed run
# as failed, score keeps serving the champion when this run's training failed.
RUN_ALWAYS: frozenset[Stage] = frozenset({S.PROMOTE, S.SCORE})


def stage(name: str | Stage) -> Stage:
    """The stage called ``name``; fails listing the stages."""
    try:
        return Stage(name)
    except ValueError:
        raise SpecError(f"unknown stage {name!r}; stages: {[s.value for s in STAGES]}") from None


def split(name: str | Split) -> Split:
    try:
        return Split(name)
    except ValueError:
        raise SpecError(f"unknown split {name!r}; splits: {[s.value for s in SPLITS]}") from None


def split_order(name: str) -> int:
    """Sort key putting known splits in window order, any other name after them."""
    return [s.value for s in SPLITS].index(name) if name in {s.value for s in SPLITS} else len(SPLITS)
