"""Moved to :mod:`persona_probe.axis.roledata`; this old path works for one release (the same module object)."""

import sys
import warnings

from .axis import roledata as _moved

warnings.warn("persona_probe.roledata moved to persona_probe.axis.roledata; import it from there",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
