from waebench.errors import UserError


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset's files are missing; the message lists what is expected where."""


class CorruptFileError(UserError, ValueError):
    """A dataset file exists but cannot be read; the message names it and the fix."""

    @classmethod
    def of(cls, path, problem: str, fix: str = "delete it and download it again"):
        return cls(
            f"{path}: {problem}. The file is damaged (an interrupted download or copy?): {fix}."
        )


class DownloadError(UserError, RuntimeError):
    """`dataset.download=true` could not fetch the files; nothing was written."""
