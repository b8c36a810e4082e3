"""Running many training jobs: sweep-job bookkeeping (stable run folders, skip finished jobs,
resume killed ones, record failures), GPU pinning for the `gpus` launcher, the sweep summary."""
