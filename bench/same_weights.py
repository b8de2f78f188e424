"""Hashes of the final model and EMA weights of four short digits runs: run on two commits, compare the lines.

    python bench/same_weights.py            # on this checkout; `git stash; git checkout REV; ...` for the other side

Used to check that a restructure changes no arithmetic (same seed -> bit-identical weights): FixMatch, ReMixMatch
(rotation off and on), SLA and co-teaching with 25% label noise, 30 steps, one thread.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile

import torch

RUNS = [("fixmatch", {}, 0.0), ("remixmatch", {}, 0.0), ("remixmatch", {"rotation": True}, 0.0), ("sla", {}, 0.0),
        ("coteaching", {}, 0.25)]


def digest(state: dict) -> str:
    h = hashlib.sha256()
    for key, value in sorted(state.items()):
        h.update(key.encode())
        h.update(value.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    from fewlabels.train import TrainConfig, train

    torch.set_num_threads(1)
    for algorithm, options, noise in RUNS:
        with tempfile.TemporaryDirectory() as out:
            train(TrainConfig(dataset="digits", algorithm=algorithm, options=options, iterations=30, eval_every=15,
                              checkpoint_every=30, labels_per_class=4, seed=3, out=out, batch_size=16, uratio=2,
                              label_noise=noise), progress=False, overwrite=True)
            ckpt = torch.load(f"{out}/last.pt", weights_only=True)
        print(f"{algorithm} {options or ''} model {digest(ckpt['model'])} ema {digest(ckpt['ema']['module'])}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
