"""User-facing errors.

Anything a user can cause by bad input (a missing file, an unknown name, a malformed config) is raised as
:class:`UserError`. The CLI prints its message on one line and exits with status 2; it never shows a
traceback for these.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""


class TrainingInterrupted(Exception):
    """Training stopped on request (Ctrl-C); a checkpoint was saved and re-running the command resumes."""
