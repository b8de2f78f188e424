"""The labeling page (``fewlabels label``): a face beside the CLI and the API, on the same library calls.

``journal`` (labels as journaled moves), ``training`` (a round as a background ``train``) and ``session`` (one
folder's picks, labels, rounds and review) need nothing beyond fewlabels itself; ``server`` (Starlette) and the
command need the optional extra: ``pip install 'fewlabels[app]'``.
"""

INSTALL_HINT = "the labeling page needs the optional web extra: pip install 'fewlabels[app]' (starlette and uvicorn)."


def require_web() -> None:
    """Refuse in one sentence, before any work, when starlette or uvicorn is missing."""
    from fewlabels.errors import FewLabelsError

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise FewLabelsError(INSTALL_HINT) from None
