"""The one exception type that dfkd raises for problems a user can fix."""


class DfkdError(Exception):
    """A user-facing error.

    The message is one line that names the problem and says what to do about it. The CLI prints it as
    ``dfkd: error: <message>`` and exits with ``exit_code`` (2, or 128 + N for a run stopped by signal N);
    library users catch it like any exception.
    """

    exit_code = 2
