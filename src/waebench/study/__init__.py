"""`waebench-study`: the published tables that fit one GPU machine, at the papers' scale, on
all its GPUs, with 10,000-image Inception FIDs and a page per table (docs/gpu.md).

- `tables`: which tables (each one line: a sweep config, the rows kept, the protocol), and
  the jobs of each, composed and checked before anything runs;
- `timing`: the calibration's step-time records and the epoch plan for a time budget;
- `command`: the command itself: checks, plan, one multirun per table, pages, the index.
"""
