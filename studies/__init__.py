"""Studies: spec, durable queue, Optuna wiring, workers, diagnosis, plots and examples."""
