"""scikit-learn/NumPy work beside training runs with one BLAS/OpenMP thread.

The symmetry analysis, suggest's strategies and check-labels fit many small models (logistic
regressions on a few hundred rows, k-means on a pool). Extra BLAS threads buy little at that size
(a 60,000-row pool on an idle many-core machine loses some speed), and beside other busy processes
their spin-waits cost a lot: measured on 2 cores next to two
training runs, the digits symmetry analysis took 86 s with the default threads and 3.3 s with one;
check-labels on 250 labels 3.1 s against 0.18 s; TypiClust on 10,000 rows 2.2 s against 0.8 s.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def one_blas_thread(fn: F) -> F:
    """Run ``fn`` with BLAS and OpenMP limited to one thread (restored afterwards)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import sklearn  # noqa: F401  (loads scikit-learn's OpenMP and SciPy's BLAS: a limit binds loaded libraries only)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
