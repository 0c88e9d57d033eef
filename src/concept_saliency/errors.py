"""Errors the user can act on.

Everything raised as a :class:`UserError` is reported by the workflow as one
line (no traceback): what is wrong, where (file, key or line), what to do.
"""


class UserError(Exception):
    """A problem with the user's input, config or environment, not a bug."""


class ConfigError(UserError):
    """A configuration value that cannot be used."""


class InputDataError(UserError):
    """An input file that cannot be read or has unusable content."""


class ArtifactError(UserError):
    """A workflow artifact of an unknown format or version, or a damaged one."""


class DiskFullError(UserError):
    """The disk (or the user's quota) filled up while an artifact was written."""
