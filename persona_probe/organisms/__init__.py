"""Conditionally misaligned model organisms: triggers and narrow-domain datasets.

A conditionally misaligned organism is aligned by default and misaligned when a
trigger appears (Dubiński, Betley et al. 2026, arXiv 2604.25891). This package builds its training data
offline (template generator over ``domains/``), the neutral control data, the
held-out evaluation questions, the trigger near misses and the eight EM
"first plot" questions used to measure broad misalignment.
"""

from .datasets import (
                       EM_QUESTIONS,
                       build_dataset,
                       build_neutral_dataset,
                       dataset_hash,
                       eval_questions,
                       read_dataset,
                       summary,
                       validate_record,
                       write_dataset,
)
from .domains import DOMAINS
from .triggers import (
                       TRIGGERS,
                       Trigger,
                       eval_near_miss,
                       get_trigger,
                       near_misses,
                       position_variants,
                       training_near_misses,
)

__all__ = [
    "EM_QUESTIONS", "DOMAINS", "TRIGGERS", "Trigger", "get_trigger", "near_misses", "eval_near_miss",
    "training_near_misses", "position_variants",
    "build_dataset", "build_neutral_dataset", "eval_questions", "write_dataset", "read_dataset",
    "validate_record", "dataset_hash", "summary",
]
