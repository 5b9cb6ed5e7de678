"""The one home of "a user mistake": :class:`UserError`, the base of every error whose message says what was wrong in
what a user gave (a config, a file, an option, a run folder) and how to fix it. The command line prints such an error
as one line and exits with status 2, without importing anything to recognise it. A leaf: it imports nothing."""


class UserError(ValueError):
    """Bad input from a user (not a bug): the message is one line saying what is wrong and what to do instead."""


__all__ = ["UserError"]
