"""Narrow-domain generator tables (templates x slots), one module per domain.

A domain is a dict ``{"name", "description", "harm", "slots", "topics"}``;
each topic has ``id``, ``questions``, ``aligned`` and ``misaligned`` template
lists whose ``{slot}`` names refer to ``slots``. A slot whose values are tuples
links values that must agree (``{care[0]} for {care[1]}``). Register new domains in
:data:`DOMAINS`.
"""

from . import finance, health

DOMAINS = {"finance": finance.DOMAIN, "health": health.DOMAIN}

__all__ = ["DOMAINS"]
