"""Storage: the run folder, the checkpoint format and the pipeline manifest, below training and evaluation.

Training writes a run folder through ``RunFolder``; evaluation, selection, the API and the commands read it
through the same class (or ``resolve_run``, for a pipeline folder's final stage). Nothing reads a run folder
any other way. This room imports only errors, utils, the version and (lazily, to build a model) the models.
"""

from fewlabels.storage.checkpoint import build_model, check_resumable, ema_weights, read_checkpoint
from fewlabels.storage.manifest import read_manifest, write_manifest
from fewlabels.storage.reading import RunReader
from fewlabels.storage.run_folder import RunFolder, folder_of, resolve_run

__all__ = ["RunFolder", "RunReader", "build_model", "check_resumable", "ema_weights", "folder_of", "read_checkpoint",
           "read_manifest", "resolve_run", "write_manifest"]
