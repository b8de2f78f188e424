"""The one exception type that means "the user's input is wrong"."""


class FewLabelsError(ValueError):
    """Bad input, explained in one sentence (what, where, how to fix).

    The CLI prints it without a traceback and exits with code 2; Python callers
    can catch it as a ``ValueError``.
    """
