"""What the labeling page's inputs must be: the image folder it works on, and the settings of a round.

Each refusal is one sentence (``FewLabelsError``) that the page shows as it is.
"""

from __future__ import annotations

from pathlib import Path

from fewlabels.app.training import Settings
from fewlabels.data.folder import UNLABELED, training_root, tree_files
from fewlabels.errors import FewLabelsError
from fewlabels.utils.io import check_writable_dir


def check_dataset(dataset: str | Path) -> Path:
    """An image folder with images that can be written (labels are moves): its training root, or one sentence."""
    path = Path(dataset)
    if str(dataset).endswith(".npz") and path.is_file():
        raise FewLabelsError(f"{dataset} is an .npz; the labeling page works on image folders for now (arrays may come "
                             "later): use fewlabels suggest and merge-labels --labels.")
    if not path.is_dir():
        raise FewLabelsError(f"{dataset} is not a folder; give an image folder (class folders + {UNLABELED}/).")
    root = training_root(path)
    paths, labels, _ = tree_files(root, training=False)  # refuses a folder without images, or with other files
    if not any(label < 0 for label in labels):
        raise FewLabelsError(f"{root} has no {UNLABELED}/ images to label; put the images to label in "
                             f"{root}/{UNLABELED}/.")
    try:
        check_writable_dir(root)
        check_writable_dir(root / UNLABELED)
    except FewLabelsError:
        raise FewLabelsError(f"{root} is read-only, and labels are moves of its files; give a folder you can write "
                             "(or a writable copy).") from None
    return root


def check_settings(current: Settings, given: dict) -> Settings:
    """``current`` with the page's ``given`` settings (iterations, batch size, algorithm), each checked."""
    from fewlabels import algorithms
    from fewlabels.train.config import bounds_of, bounds_text

    out = Settings(**{k: v for k, v in vars(current).items()})
    for key, field in (("iterations", "iterations"), ("batch_size", "batch_size")):
        if key in given:
            low, high = bounds_of(field)
            value = given[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise FewLabelsError(f"{key.replace('_', ' ')} must be a whole number, {bounds_text(low, high)}.")
            setattr(out, key, value)
    if "algorithm" in given:
        if given["algorithm"] not in algorithms.names():
            raise FewLabelsError(f"unknown algorithm '{given['algorithm']}'; choose one of "
                                 f"{', '.join(algorithms.names())}.")
        out.algorithm = given["algorithm"]
    return out
