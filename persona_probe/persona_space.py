"""Moved to :mod:`persona_probe.axis.persona_space`; this old path works for one release (the same module object)."""

import sys
import warnings

from .axis import persona_space as _moved

warnings.warn("persona_probe.persona_space moved to persona_probe.axis.persona_space; import it from there",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
