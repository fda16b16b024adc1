"""The Assistant Axis stage: role data, the resumable build, the axis math and persona space.

* :mod:`.compute` - role vectors, default vector, ``axis = default - mean(roles)``, axis files;
* :mod:`.pipeline` - :func:`build_axis`: generate -> judge -> activation shards -> vectors -> axis -> PCA;
* :mod:`.shards` - per-role running sums by judge grade (the streaming build's step files);
* :mod:`.persona_space` - PCA of the role vectors and how PC1 lines up with the axis;
* :mod:`.roledata` - roles, extraction questions and default prompts (shipped or your own files);
* :mod:`.cli` - ``persona-probe axis build``.

The names of :mod:`.compute` are re-exported here, so ``from persona_probe.axis import load_axis``
keeps working.
"""

from .compute import (
                      RoleVectors,
                      RunningSums,
                      compute_axis,
                      compute_role_vectors,
                      default_vector,
                      export_reference_axis,
                      export_reference_role_vectors,
                      load_axis,
                      load_reference_role_vectors,
                      load_role_vectors,
                      role_vectors_from_sums,
                      save_axis,
                      save_role_vectors,
)
from .persona_space import PCAResult, layer_summary, role_pca
from .pipeline import AxisBuildResult, JudgeFn, build_axis
from .roledata import Question, Role, load_default_prompts, load_questions, load_roles, select_questions, select_roles

__all__ = [
    "RoleVectors", "compute_role_vectors", "default_vector", "compute_axis",
    "save_axis", "load_axis", "export_reference_axis", "save_role_vectors", "load_role_vectors",
    "RunningSums", "role_vectors_from_sums", "export_reference_role_vectors", "load_reference_role_vectors",
    "build_axis", "AxisBuildResult", "JudgeFn", "PCAResult", "role_pca", "layer_summary",
    "Role", "Question", "load_roles", "load_questions", "load_default_prompts", "select_roles", "select_questions",
]
