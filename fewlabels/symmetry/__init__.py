"""Symmetry discovery: which transformations keep the label, change it, or are already symmetric in the data.

An analysis beside evaluation: it reads images and the few labels and returns a report;
``train --augment auto`` consults it to choose its views (``fewlabels.train.augmentation``).
"""

from fewlabels.symmetry.analysis import CHANGES, KEEPS, SYMMETRIC, UNKNOWN, analyse
from fewlabels.symmetry.choice import analyse_split, choose
from fewlabels.symmetry.transforms import CANDIDATES, DIHEDRAL, SMALL

__all__ = ["CANDIDATES", "CHANGES", "DIHEDRAL", "KEEPS", "SMALL", "SYMMETRIC", "UNKNOWN", "analyse", "analyse_split",
           "choose"]
