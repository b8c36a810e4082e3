"""Hyper-parameter search with Optuna: the search space (`space`), the study and its trials as
sweep jobs (`study`), what a trial's job folder says about it (`outcome`), and the callback
that runs inside a trial's job: its heartbeat and pruning (`callback`). The sweeper that
drives them is the Hydra plugin `hydra_plugins.waebench_optuna`; `waebench.reporting.search`
reads a finished study."""
