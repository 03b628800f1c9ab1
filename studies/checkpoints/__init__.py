"""The trained models to take home: each complete trial's best checkpoint in the artifact
store, the study's retention, the store's size cap, and ``train.init_from: "trial:<id>"``.

Where the files live (under the artifacts folder, names from ids only, never user input):

- ``checkpoints/running/<trial_id>.pt``: the trainer writes the running trial's best epoch
  here (best by the study's objective: ``train(checkpoint_path=..., best_by=...)``). The
  slot's next attempt continues it after a resume, as it continues the epoch state.
- ``checkpoints/<study_id>/<trial_id>.pt``: the stored checkpoint, recorded in the trial's
  row (``checkpoint_key``: this path relative to the artifacts folder; ``checkpoint_epoch``;
  ``checkpoint_bytes``). The row is the truth: only a recorded key is ever served.

``keep_checkpoint`` runs once per finished slot, after the queue recorded its end; it is
the one entry point for workers, packed runs included (one call per member trial).
Retention and the cap are decided there, under a lock every keep takes:

- Retention: the study keeps the checkpoints of its best ``keep_checkpoints`` trials (the
  spec's field, default 3) by its objective, ranked as the study's best trial is
  (``studies.results``). It is applied as each trial completes rather than once at the end:
  trials only ever join the completed set, so a checkpoint that falls out of the best k
  can never get back in, and the study ends with exactly the k best (the files of the
  others are deleted as soon as that is certain, so the store never holds them).
- Cap: ``max_bytes`` (``SWEEPDOC_MAX_ARTIFACT_BYTES``) bounds the bytes of all stored
  checkpoints (their sizes are in the rows). A checkpoint that would pass it, after what
  retention frees in the same step, is skipped: its file deleted, a warning on the trial,
  the trial still complete.

Every checkpoint a trial does not get, or loses, leaves one warning on its row starting
with ``checkpoint `` (``TrialRow.warnings``, shown by the API); ``why_no_checkpoint``
turns that, or the trial's state, into the reason a download gets with its 404.

``_keep``: storing, retention, the cap, the sweeps (``sweep_running``: the running files of
slots nothing will continue, a killed worker's included) and a deleted study's files;
``_lookup``: a stored checkpoint by trial (downloads), why a trial has none, and the
``trial:<id>`` form of ``train.init_from``.
"""

from studies.checkpoints._keep import (
    CHECKPOINTS_DIR,
    RUNNING_DIR,
    delete_study_checkpoints,
    keep_checkpoint,
    running_path,
    sweep_running,
)
from studies.checkpoints._lookup import (
    StoredCheckpoint,
    check_init_from,
    init_from_file,
    trial_checkpoint,
    why_no_checkpoint,
)

__all__ = [
    "CHECKPOINTS_DIR",
    "RUNNING_DIR",
    "StoredCheckpoint",
    "check_init_from",
    "delete_study_checkpoints",
    "init_from_file",
    "keep_checkpoint",
    "running_path",
    "sweep_running",
    "trial_checkpoint",
    "why_no_checkpoint",
]
