"""The commands of ``fewlabels``, one module each: ``add_parser(sub)`` adds its flags, ``run(args)`` parses and prints.

The work itself lives in the library (``fewlabels.train``, ``fewlabels.evaluate``, ``fewlabels.export``).
"""

from fewlabels.commands import (
    augment_preview,
    check_labels,
    datasets,
    demo,
    embed,
    evaluate,
    export,
    label,
    merge_labels,
    pipeline,
    predict,
    probe,
    report,
    suggest,
    symmetries,
    train,
)

MODULES = (train, pipeline, demo, augment_preview, symmetries, evaluate, probe, embed, predict, report, export, datasets,
           suggest, merge_labels, check_labels, label)
COMMANDS = {m.NAME: m for m in MODULES}

__all__ = ["COMMANDS", "MODULES"]
