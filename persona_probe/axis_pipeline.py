"""Moved to :mod:`persona_probe.axis.pipeline`; this old path works for one release (the same module object)."""

import sys
import warnings

from .axis import pipeline as _moved

warnings.warn("persona_probe.axis_pipeline moved to persona_probe.axis.pipeline; import it from there",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
