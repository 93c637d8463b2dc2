"""Modelling core of the LTV pipeline: resampling, buyer classifier, multi-horizon regressor,
stacker, gate, baselines, the orchestration of the stack, and (de)serialisation.

Every component takes plain pandas/numpy inputs (a feature frame of float32 + pandas category
columns, label arrays), so it does not depend on how the features were built.

Modules (import each name from the module that defines it: the package itself imports nothing, so
reading the models config does not import LightGBM, scikit-learn and pandas):

* ``matrix``: the feature-schema guard (``FeatureSchema``), the once-converted float matrix
  (``DenseMatrix``), ``check_matrix`` / ``check_labels``
* ``lgb``: LightGBM defaults and parameter assembly, one early-stopped training call, prediction on
  a ``DenseMatrix``
* ``resample``, ``classifier``, ``regressor``, ``stacker``, ``gate``, ``baselines``: the components
* ``config``: config/models.yaml, validated (``ModelsConfig``)
* ``labels``: revenue per horizon from a label frame
* ``plans``: the resampling plans of the training window (``resample_stage``)
* ``search``: the validation search over parameter candidates (``param_search``)
* ``stack``: the fitted stack and its outputs (``FittedStack``, ``assemble_stack``)
* ``training``: the stage-sized fit functions (``train_classifier`` ... ``train_stack``)
* ``persist``: JSON (de)serialisation of every fitted model and of a stack
"""
