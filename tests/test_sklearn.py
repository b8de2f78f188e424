"""The scikit-learn estimator: labels and markers, features and images, cloning, meta-estimators, estimator checks."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fewlabels import data
from fewlabels.errors import FewLabelsError
from fewlabels.sklearn import EXPECTED_FAILED_CHECKS, SemiSupervisedClassifier

FAST = dict(batch_size=32, uratio=4)


@pytest.fixture(scope="module")
def digits():
    src = data.load("digits")
    images, y = src.train.x[:, 0].numpy(), src.train.y.numpy()
    split = data.split(y, labels_per_class=5, seed=0)
    y_semi = np.full(len(y), -1)
    y_semi[split.labeled] = y[split.labeled]
    test_images = src.test.x[:, 0].numpy()
    return SimpleNamespace(images=images, features=images.reshape(len(y), -1) / 255.0, y=y, y_semi=y_semi,
                           labeled=split.labeled, unlabeled=split.unlabeled, test_images=test_images,
                           test_features=test_images.reshape(len(test_images), -1) / 255.0, test_y=src.test.y.numpy())


def test_features_train_the_mlp_with_string_labels_and_a_custom_marker(digits):
    names = np.array([f"digit-{c}" for c in range(10)])
    y = np.where(digits.y_semi >= 0, names[digits.y_semi.clip(0)], "?")
    clf = SemiSupervisedClassifier(unlabeled_marker="?", iterations=60, **FAST).fit(digits.features, y)
    assert list(clf.classes_) == sorted(names)
    assert clf.algorithm_ == "labelprop" and clf.run_.config.model == "mlp"  # the default for feature vectors
    assert clf.n_features_in_ == 64
    assert clf.run_.results["num_labeled"] == 50 and clf.run_.results["num_unlabeled"] == len(digits.unlabeled)
    pred = clf.predict(digits.test_features)
    assert set(pred) <= set(names)
    assert (pred == names[digits.test_y]).mean() > 0.6  # chance 0.1; ~0.88 after 60 steps
    assert clf.predict_proba(digits.test_features).shape == (len(digits.test_y), 10)


def test_images_train_the_cnn(digits):
    clf = SemiSupervisedClassifier(iterations=20, **FAST).fit(digits.images, digits.y_semi)
    assert clf.run_.config.model == "cnn" and clf.run_.sample_shape == (1, 8, 8)
    assert clf.n_features_in_ == 64
    assert clf.score(digits.test_images, digits.test_y) > 0.3  # chance 0.1; ~0.75 after 20 steps
    with pytest.raises(FewLabelsError, match="fitted on images"):
        clf.predict(digits.test_features)
    # flat rows read as images with image_shape: the same network
    flat = SemiSupervisedClassifier(iterations=2, image_shape=(8, 8), **FAST).fit(digits.images.reshape(-1, 64), digits.y_semi)
    assert flat.run_.config.model == "cnn" and flat.n_features_in_ == 64
    assert flat.predict(digits.test_images.reshape(-1, 64)).shape == (len(digits.test_y),)
    with pytest.raises(FewLabelsError, match="image_shape"):
        SemiSupervisedClassifier(iterations=2, image_shape=(7, 7)).fit(digits.images.reshape(-1, 64), digits.y_semi)


def test_fully_labeled_y_trains_the_supervised_baseline(digits):
    clf = SemiSupervisedClassifier(algorithm="fixmatch", iterations=2, threshold=0.9, **FAST).fit(
        digits.features[:200], digits.y[:200])
    assert clf.algorithm_ == "supervised" and clf.run_.config.algorithm == "supervised"


def test_numpy_scalar_params_from_parameter_grids_work(digits):
    clf = SemiSupervisedClassifier(algorithm="fixmatch", iterations=np.int64(2), batch_size=np.int64(8), uratio=np.int32(1),
                                   lr=np.float32(0.05),
                                   threshold=np.float64(0.9), seed=np.int64(1))
    clf.fit(digits.features, digits.y_semi)
    cfg = clf.run_.config
    assert (cfg.iterations, cfg.batch_size, cfg.uratio, cfg.seed) == (2, 8, 1, 1) and type(cfg.iterations) is int
    assert cfg.lr == pytest.approx(0.05) and cfg.options == {"threshold": 0.9}


def test_score_skips_unlabeled_rows(digits):
    clf = SemiSupervisedClassifier(iterations=5, **FAST).fit(digits.features, digits.y_semi)
    lab = digits.labeled
    expected = (clf.predict(digits.features[lab]) == digits.y[lab]).mean()
    assert clf.score(digits.features, digits.y_semi) == pytest.approx(expected)


def test_clone_and_params_round_trip(digits):
    clf = SemiSupervisedClassifier(model="mlp", iterations=7, threshold=0.8, unlabeled_marker="?", image_shape=(8, 8), seed=3)
    params = clf.get_params()
    assert params["threshold"] == 0.8 and params["image_shape"] == (8, 8) and params["unlabeled_marker"] == "?"
    twin = clone(clf)
    assert twin is not clf and twin.get_params() == params
    twin.set_params(threshold=0.7, iterations=9)
    assert twin.threshold == 0.7 and twin.iterations == 9 and clf.threshold == 0.8
    fitted = SemiSupervisedClassifier(iterations=2).fit(digits.features, digits.y_semi)
    assert not hasattr(clone(fitted), "run_")


def test_options_reach_the_algorithm_and_survive_clone(digits):
    clf = SemiSupervisedClassifier(algorithm="freematch", options={"momentum": np.float64(0.5), "lambda_f": 0.02}, iterations=2,
                                   batch_size=8, uratio=1)
    assert clf.get_params()["options"] == {"momentum": 0.5, "lambda_f": 0.02}
    twin = clone(clf)
    assert twin.options == clf.options and twin.options is not clf.options
    twin.set_params(options={"momentum": 0.9})
    assert clf.options["momentum"] == 0.5
    clf.fit(digits.features, digits.y_semi)
    cfg = clf.run_.config
    assert cfg.options == {"momentum": 0.5, "lambda_f": 0.02} and cfg.momentum == 0.9  # FreeMatch's, not SGD's
    assert clf.run_.results["algorithm_options"]["momentum"] == 0.5
    assert clf.options == {"momentum": 0.5, "lambda_f": 0.02}  # fit leaves the parameters as given
    both = SemiSupervisedClassifier(algorithm="fixmatch", options={"lambda_u": 2.0}, threshold=0.8, iterations=1,
                                    **FAST).fit(digits.features, digits.y_semi)
    assert both.run_.config.options == {"lambda_u": 2.0, "threshold": 0.8}


@pytest.mark.parametrize(
    "params, fragment",
    [
        (dict(options={"thresold": 0.9}), "fixmatch has no option 'thresold': did you mean 'threshold'"),
        (dict(options={"lr": 0.1}), "lr is a training setting"),
        (dict(options={"threshold": 0.9}, threshold=0.8), "disagree; give the threshold once"),
        (dict(options="threshold=0.9"), "options must be a dict"),
    ],
)
def test_bad_options_are_one_clear_error(digits, params, fragment):
    with pytest.raises(FewLabelsError, match=fragment):
        SemiSupervisedClassifier(algorithm="fixmatch", iterations=1, **params).fit(digits.features, digits.y_semi)


def test_pipeline_with_a_scaler(digits):
    pipe = Pipeline([("scale", StandardScaler()), ("clf", SemiSupervisedClassifier(iterations=30, **FAST))])
    pipe.fit(digits.features, digits.y_semi)
    assert pipe.score(digits.test_features, digits.test_y) > 0.5
    assert pipe.named_steps["clf"].n_features_in_ == 64


def test_grid_search_over_threshold(digits):
    search = GridSearchCV(SemiSupervisedClassifier(algorithm="fixmatch", iterations=30, **FAST), {"threshold": [0.7, 0.95]}, cv=2)
    search.fit(digits.features, digits.y_semi)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.isfinite(scores).all() and (scores > 0.3).all()
    assert search.best_params_["threshold"] in (0.7, 0.95)
    assert search.best_estimator_.run_.config.options == {"threshold": search.best_params_["threshold"]}


def test_cross_val_score(digits):
    scores = cross_val_score(SemiSupervisedClassifier(iterations=30, **FAST), digits.features, digits.y_semi, cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all() and (scores > 0.3).all()


@pytest.mark.parametrize(
    "y_of, fragment",
    [
        (lambda y: np.full(len(y), -1), "Every row of y is the unlabeled marker"),
        (lambda y: np.where(np.arange(len(y)) < 10, 3, -1), "only one class"),
        (lambda y: y + 0.5, "Unknown label type"),
    ],
)
def test_bad_labels_are_one_clear_error(digits, y_of, fragment):
    with pytest.raises(ValueError, match=fragment):
        SemiSupervisedClassifier(iterations=2).fit(digits.features, y_of(digits.y_semi))


def test_negative_pixels_are_refused(digits):
    with pytest.raises(FewLabelsError, match="negative pixel values"):
        SemiSupervisedClassifier(iterations=2).fit(digits.images.astype(float) - 1.0, digits.y_semi)


def _expected_failures(estimator):
    return EXPECTED_FAILED_CHECKS


@parametrize_with_checks([SemiSupervisedClassifier(iterations=30, batch_size=8, uratio=1)],
                         expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    torch.set_num_threads(1)
    check(estimator)
