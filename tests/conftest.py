import os

# one BLAS/OpenMP thread for every process the tests start (CLI subprocesses included): on a 2-core machine
# small scikit-learn fits with spinning worker threads beside other busy processes run many times slower
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from fewlabels.symmetry import choice as symmetry_choice  # noqa: E402
from fewlabels.symmetry.analysis import FORMAT, NOT_JUDGED  # noqa: E402
from fewlabels.symmetry.transforms import CANDIDATES  # noqa: E402

REAL_ANALYSE_SPLIT = symmetry_choice.analyse_split


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests share two cores with each other and with CI's other work."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(autouse=True, scope="session")
def _symmetry_cache(tmp_path_factory):
    """--augment auto caches its analysis per split: in a folder of this session's, not the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FEWLABELS_CACHE", str(tmp_path_factory.mktemp("fewlabels-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _quick_symmetry_analysis():
    """--augment auto analyses every new split (seconds each); the hundreds of short runs here would spend minutes on it.

    Outside tests marked ``symmetry_analysis`` the analysis answers "not judged" for every candidate,
    so auto still resolves, records and resumes its choice (the dataset's own default), only without
    the classifiers behind the verdicts. Session-wide, so module-scoped fixtures' runs get it too.
    """
    def stand_in(x, y, labeled, unlabeled, classes, seed=0, use_cache=True):
        report = {"format": FORMAT, "seed": seed, "notes": ["stand-in analysis for tests"], "seconds": 0.0,
                  "candidates": [{"name": n, "verdict": NOT_JUDGED} for n in CANDIDATES]}
        report["split_hash"] = symmetry_choice.split_hash(x, labeled, unlabeled, y, seed)
        return report, False

    mp = pytest.MonkeyPatch()
    mp.setattr(symmetry_choice, "analyse_split", stand_in)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _real_symmetry_analysis(request, monkeypatch):
    if request.node.get_closest_marker("symmetry_analysis"):
        monkeypatch.setattr(symmetry_choice, "analyse_split", REAL_ANALYSE_SPLIT)
    yield
