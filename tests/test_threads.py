"""Small scikit-learn work runs with one BLAS thread, and the caller's limits come back afterwards."""

import os
import subprocess
import sys

import numpy as np
import pytest
import sklearn  # noqa: F401  (its and SciPy's thread pools loaded before the limits below are set)
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


FIRST_CALL = """
from threadpoolctl import threadpool_info
from fewlabels.utils.threads import one_blas_thread

@one_blas_thread
def first():
    from sklearn.linear_model import LogisticRegression  # loaded only now, inside the call
    import numpy as np
    LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    return [(lib["internal_api"], lib["num_threads"]) for lib in threadpool_info()]

print(first())
"""


def test_the_limit_binds_libraries_first_loaded_inside_the_call():
    # a fresh process without the tests' thread settings: a CLI command's one and only call
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", FIRST_CALL], capture_output=True, text=True, env=env, check=True)
    libs = eval(out.stdout.strip())
    assert libs and all(n == 1 for _, n in libs), libs
