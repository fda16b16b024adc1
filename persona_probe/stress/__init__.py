"""The stress test: {models} x {trigger conditions} x {interventions + controls}, judged, with intervals."""

from .config import CONDITIONS, CONTROLS, StressConfig, load_stress_config
from .matrix import Cell, Directions, Spec, build_interventions, expand
from .report import results_table
from .run import load_directions, run_stress_test

__all__ = ["StressConfig", "load_stress_config", "CONDITIONS", "CONTROLS", "Cell", "Spec", "Directions", "expand",
           "build_interventions", "run_stress_test", "load_directions", "results_table"]
