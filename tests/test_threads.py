"""Small scikit-learn work runs with one BLAS thread, and the caller's limits come back afterwards."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from fewlabels.utils.threads import one_blas_thread


def blas_threads() -> list[int]:
    np.ones((2, 2)) @ np.ones((2, 2))  # loads NumPy's BLAS
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_one_blas_thread_inside_and_the_callers_limit_after():
    @one_blas_thread
    def inside():
        return blas_threads()

    with threadpool_limits(limits=2):  # the tests' own limit is 1: raise it to see the decorator lower it
        before = blas_threads()
        if not before or max(before) < 2:
            pytest.skip("this machine's BLAS runs one thread anyway")
        assert inside() == [1] * len(before)
        assert blas_threads() == before
