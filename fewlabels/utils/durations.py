"""How long something will take, in the words the progress lines use ("16.3 h", "4 min", "35 s")."""

from __future__ import annotations

import math

LONG_S = 3600.0  # past this a job says its estimate even without a progress bar, with ways to shorten it


def duration_text(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(1, math.ceil(seconds / 60))} min" if seconds >= 60 else f"{seconds:.0f} s"
