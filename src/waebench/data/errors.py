class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing; the message lists what is expected where."""
