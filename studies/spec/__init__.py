"""The study spec: one strict, typed description of a learning-rate study.

``{"dataset": "digits"}`` is a valid study (the seed's five learning rates on digits); see
docs/architecture.md "Study spec". The ``data``, ``model`` and ``train`` sections are the
trainer's own configs (trainer/_config.py defines each setting once); this package adds
what a study needs on top of a run:

- ``_sections``: the sections, paths relative to the server's data root, field bounds;
- ``_search``: the learning-rate search and its extra dimensions;
- ``_study``: ``StudySpec`` and what it derives (trial count, grid points, run configs);
- ``_limits``: one server's limits (``SpecLimits``) and ``check_submission``;
- ``_files``: parsing data and YAML/JSON files with errors that name the field.
"""

from studies.spec._files import (
    default_grid_spec_path,
    example_spec_paths,
    field_error_at,
    load_spec_file,
    parse_spec,
)
from studies.spec._limits import SpecLimits, check_limits, check_submission
from studies.spec._search import (
    DEFAULT_N_TRIALS,
    MAX_LR,
    MAX_POINTS_PER_DECADE,
    MAX_TRIALS,
    SEED_LR_GRID,
    ExtraDims,
    Sampler,
    SearchSpec,
    section_of,
)
from studies.spec._sections import (
    DataSpec,
    FieldBounds,
    ModelSpec,
    TrainSpec,
    field_bounds,
    relative_path,
    resolve_inside,
)
from studies.spec._study import (
    MAX_FOLLOW_UP_ROUNDS,
    MAX_NAME_CHARS,
    MAX_PARALLEL,
    FollowUpSpec,
    Objective,
    Pruner,
    StudySpec,
    stored_follow_up_rounds,
)
from trainer._config import MAX_EPOCHS

__all__ = [
    "DEFAULT_N_TRIALS",
    "MAX_EPOCHS",
    "MAX_FOLLOW_UP_ROUNDS",
    "MAX_LR",
    "MAX_NAME_CHARS",
    "MAX_PARALLEL",
    "MAX_POINTS_PER_DECADE",
    "MAX_TRIALS",
    "SEED_LR_GRID",
    "DataSpec",
    "ExtraDims",
    "FieldBounds",
    "FollowUpSpec",
    "ModelSpec",
    "Objective",
    "Pruner",
    "Sampler",
    "SearchSpec",
    "SpecLimits",
    "StudySpec",
    "TrainSpec",
    "check_limits",
    "check_submission",
    "default_grid_spec_path",
    "example_spec_paths",
    "field_bounds",
    "field_error_at",
    "load_spec_file",
    "parse_spec",
    "relative_path",
    "resolve_inside",
    "section_of",
    "stored_follow_up_rounds",
]
