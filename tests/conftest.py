import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests share two cores with each other and with CI's other work."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True, scope="session")
def _symmetry_cache(tmp_path_factory):
    """--augment auto caches its analysis per split: in a folder of this session's, not the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FEWLABELS_CACHE", str(tmp_path_factory.mktemp("fewlabels-cache")))
    yield
    mp.undo()


def pytest_configure(config):
    config.addinivalue_line("markers", "symmetry_analysis: runs --augment auto's real analysis (others get a stand-in)")


@pytest.fixture(autouse=True)
def _quick_symmetry_analysis(request, monkeypatch):
    """--augment auto analyses every new split (~2 s); the hundreds of short runs here would spend minutes on it.

    Outside tests marked ``symmetry_analysis`` the analysis answers "not judged" for every candidate,
    so auto still resolves, records and resumes its choice (the dataset's own default), only without
    the classifiers behind the verdicts.
    """
    if request.node.get_closest_marker("symmetry_analysis"):
        yield
        return
    from fewlabels.symmetry import choice
    from fewlabels.symmetry.analysis import FORMAT, NOT_JUDGED
    from fewlabels.symmetry.transforms import CANDIDATES

    def stand_in(x, y, labeled, unlabeled, classes, seed=0, use_cache=True):
        report = {"format": FORMAT, "seed": seed, "notes": ["stand-in analysis for tests"], "seconds": 0.0,
                  "candidates": [{"name": n, "verdict": NOT_JUDGED} for n in CANDIDATES]}
        report["split_hash"] = choice.split_hash(x, labeled, unlabeled, y, seed)
        return report, False

    monkeypatch.setattr(choice, "analyse_split", stand_in)
    yield
