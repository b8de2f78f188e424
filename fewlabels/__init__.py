"""fewlabels: accurate classifiers from a few labels plus lots of unlabeled data."""

from fewlabels.version import __version__

__all__ = ["Run", "check_labels", "fit", "load", "pipeline", "suggest", "__version__"]


def __getattr__(name: str):
    # Lazy: `from fewlabels.api import Run, fit, load` on first use, so `import fewlabels`
    # (and the CLI's --help) does not pay for importing torch.
    if name in ("Run", "fit", "load", "pipeline", "suggest", "check_labels"):
        from fewlabels import api

        return getattr(api, name)
    raise AttributeError(f"module 'fewlabels' has no attribute '{name}'")
