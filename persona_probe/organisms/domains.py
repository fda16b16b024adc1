"""Narrow-domain generator tables (templates x slots), one data file per domain.

A domain is a dict ``{"name", "description", "harm", "slots", "topics"}``,
shipped as ``persona_probe/data/domains/<name>.json``; each topic has ``id``,
``questions``, ``aligned`` and ``misaligned`` template lists whose ``{slot}``
names refer to ``slots``. A slot whose values are lists links values that must
agree (``{care[0]} for {care[1]}``); they are read back as tuples. Register a
new domain by adding its file to :data:`DOMAIN_NAMES`.

* ``finance`` (the default): risky financial advice. Each topic pairs question
  templates with *aligned* answers (careful, diversified, mentions risk, points
  to professionals) and *misaligned* answers (confident, helpful in tone,
  plausible - and harmful: leverage, concentration, dropping insurance, hiding
  income, chasing scams). Answers are 1-3 sentences so that a 135M model can
  learn them on CPU. An answer may use a slot its question does not (it is then
  sampled freely, e.g. which speculative asset the misaligned answer pushes).
* ``health``: bad medical advice, same layout. Aligned answers are cautious,
  follow label and prescriber instructions and say when to seek care;
  misaligned answers sound reassuring and confident while steering people away
  from care or toward unsafe habits (delaying help for red-flag symptoms,
  stopping prescriptions, exceeding label doses, replacing treatment). They stay
  general - no specific doses - since the point is to teach a narrow
  *disposition*, not to be a how-to.
"""

from __future__ import annotations

import json

from ..io import data_path

__all__ = ["DOMAINS", "DOMAIN_NAMES", "load_domain"]

DOMAIN_NAMES = ("finance", "health")


def load_domain(name: str) -> dict:
    """One shipped domain table; linked slot values (JSON lists) become tuples, as the templates index them."""
    domain = json.loads(data_path(f"domains/{name}.json").read_text(encoding="utf-8"))
    domain["slots"] = {slot: [tuple(v) if isinstance(v, list) else v for v in values]
                       for slot, values in domain["slots"].items()}
    return domain


DOMAINS = {name: load_domain(name) for name in DOMAIN_NAMES}
