"""The run folder and its record (`waebench.run.record`)."""
