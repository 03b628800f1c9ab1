"""Studies: spec, durable queue, Optuna wiring, workers, diagnosis, plots and examples.

Modules (the service calls only those listed in docs/architecture.md "studies ↔ service"):
``spec`` (StudySpec, load_spec_file), ``db`` (Database, StudyStatus, TrialState),
``store`` (submit/list/get/cancel, diagnosis, plots, readiness), ``worker`` (run_worker),
``errors``; internal: ``queue`` (claims, heartbeat, reaper), ``optuna_bridge``, ``schemas``,
``plots``. This package imports nothing itself, so ``studies.diagnosis`` stays light.
"""
