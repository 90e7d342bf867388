"""Errors a user can cause.

A `UserError` carries one sentence naming what is wrong and where (file, sheet,
row, option). The CLI prints it on one line and exits with status 2; library
callers can catch it like any exception. Bugs stay ordinary exceptions so that
they keep their tracebacks.
"""


class UserError(Exception):
    """A problem in the user's input or options, explained in one line."""
