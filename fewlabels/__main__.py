"""``python -m fewlabels`` (what ``torchrun -m fewlabels train ...`` runs on every process)."""

import sys

from fewlabels.cli import main

sys.exit(main())
