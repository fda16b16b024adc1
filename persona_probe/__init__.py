"""persona-probe: does Assistant-Axis capping stop a conditionally misaligned model?

Core entry points::

    from persona_probe import load_model, project, Steer, Ablate, Cap
    model = load_model("embedded")
    acts = model.response_activations(conversations)        # [n, n_layers, d]
    texts = model.generate(prompts, interventions=[Cap(axis, [10, 11], tau=2.0, mode="floor")])

Each stage has its own folder (``axis``, ``capping``, ``organisms``, ``judges``, ``stress``,
``analysis``); the README's Layout section gives the import order between them.
"""

from .interventions import Ablate, Cap, ConditionalCap, Detector, Steer, SubspaceCap
from .loading import load_model, wrap_model
from .lora import LoraEdit
from .model import ProbeModel
from .vectors import project

__all__ = ["load_model", "wrap_model", "ProbeModel", "project", "Steer", "Ablate", "Cap", "SubspaceCap",
           "ConditionalCap", "Detector",
           "LoraEdit"]
__version__ = "0.1.0"
