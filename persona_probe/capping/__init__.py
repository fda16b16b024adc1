"""The capping stage: configs in the published ``capping_config.pt`` structure, and their calibration.

* :mod:`.config` - the structure, its sign convention (read it explicitly: published files store
  a ceiling on a vector that points away from the Assistant), experiment ids, reading, writing,
  validating, and the ``Cap`` edits of one experiment;
* :mod:`.calibrate` - thresholds from percentiles of rollouts' axis projections;
* :mod:`.subspace` - persona-subspace experiments (``subspace_k{k}_layers_{s}:{e}-p{q}``), stored
  beside the published keys of the same file: bases, calibration, reading;
* :mod:`.cli` - ``persona-probe capping calibrate|list``.

The math of a cap is in :mod:`persona_probe.edits`. Every name that ``persona_probe.capping``
offered as a single module is re-exported here.
"""

from .calibrate import DEFAULT_PERCENTILES, calibrate, windows
from .config import (
                     CONVENTIONS,
                     experiment_id,
                     experiment_interventions,
                     list_experiments,
                     load_capping_config,
                     parse_experiment_id,
                     save_capping_config,
                     validate_config,
)
from .subspace import (
                       add_subspace_experiments,
                       calibrate_subspaces,
                       list_subspace_experiments,
                       parse_subspace_id,
                       subspace_bases,
                       subspace_experiment_id,
                       subspace_experiment_interventions,
                       validate_subspaces,
)

__all__ = [
    "CONVENTIONS", "DEFAULT_PERCENTILES", "calibrate", "windows", "experiment_id", "parse_experiment_id",
    "save_capping_config", "load_capping_config", "validate_config", "list_experiments", "experiment_interventions",
    "add_subspace_experiments", "calibrate_subspaces", "list_subspace_experiments", "parse_subspace_id",
    "subspace_bases", "subspace_experiment_id", "subspace_experiment_interventions", "validate_subspaces",
]
