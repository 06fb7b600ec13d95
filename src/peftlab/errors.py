"""User-facing errors.

Anything a user can cause by bad input (a missing file, an unknown name, a malformed config) is raised as
:class:`UserError`. The CLI prints its message on one line and exits with status 2; it never shows a
traceback for these.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""


class TrainingInterrupted(Exception):
    """Training stopped on request (Ctrl-C); a checkpoint was saved and re-running the command resumes."""


def unreadable_weights_errors() -> tuple[type[Exception], ...]:
    """What loading a damaged weights or config file raises: safetensors' own error (not an OSError),
    OSError for missing or truncated files, ValueError (JSON included) for garbage configs."""
    from safetensors import SafetensorError

    return (OSError, ValueError, SafetensorError)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
