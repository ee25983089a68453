"""Errors that users can cause and fix.

Every expected failure (bad input file, unknown dataset, incompatible bundle...) raises a
:class:`MeddxError` subclass whose message names the file or field and says what is wrong. The CLI
prints that message and exits non-zero without a traceback; anything else is a bug and keeps its
traceback.
"""


class MeddxError(Exception):
    """Base class for errors a user can act on."""

    exit_code = 2


class ConfigError(MeddxError):
    """An option or configuration value is invalid."""


class DatasetNotFoundError(MeddxError):
    """A dataset name is not in the catalog, or its files are not in the data directory."""


class DownloadError(MeddxError):
    """A dataset or weights file could not be downloaded or failed its checksum."""


class InputFileError(MeddxError):
    """An input file is missing, unreadable, corrupt or of the wrong shape."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DataError(MeddxError):
    """A dataset's content is invalid (labels outside the classes, empty split...)."""


class BundleError(MeddxError):
    """A model bundle is missing, broken or from an incompatible version."""
