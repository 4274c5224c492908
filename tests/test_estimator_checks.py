"""scikit-learn's estimator checks (``parametrize_with_checks``) for both estimators.

Each expected failure is listed with the reason it cannot or should not pass.
"""
from __future__ import annotations

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from dnnfast.estimators import MLPClassifier, MLPRegressor  # noqa: E402

# scikit-learn runs its own MLP checks with max_iter=100 (utils/_test_common/
# instance_generator.py); the other solvers are checked too, with the settings
# scikit-learn uses for its sample-weight equivalence check.
ESTIMATORS = [
    MLPClassifier(max_iter=100),
    MLPRegressor(max_iter=100),
    MLPClassifier(solver="lbfgs", max_iter=100),
    MLPRegressor(solver="sgd", tol=1e-2, random_state=42, max_iter=100),
    # Settings that refuse some inputs, which the tags declare (positive_only, multi_label) so the
    # checks do not send them.
    MLPRegressor(loss="poisson", max_iter=100),
    MLPClassifier(class_weight="balanced", max_iter=100),
]

_SAME_AS_SKLEARN = (
    "scikit-learn's own MLPRegressor(solver='sgd', tol=1e-2, random_state=42, max_iter=100) fails this "
    "check too: tol=1e-2 stops SGD after a few epochs, before the fit reaches the R^2 the check asks for. "
    "dnnfast reproduces scikit-learn's numbers, so it stops at the same epoch. These settings are kept "
    "because they are the ones scikit-learn uses for check_sample_weight_equivalence_on_dense_data.")

# {(class name, solver): {check name: reason}}; everything not listed passes.
EXPECTED_FAILED = {
    ("MLPRegressor", "sgd"): {"check_regressors_train": _SAME_AS_SKLEARN},
}


_POISSON_SAME_AS_SKLEARN = (
    "scikit-learn's own MLPRegressor(loss='poisson', max_iter=100) fails this check too: after 100 "
    "epochs its exp output fits the check's targets to an R^2 below the 0.5 asked (-0.15 with "
    "random_state=0, 0.32 with 1; dnnfast's the same, to round-off).")

_BALANCED_PARTIAL_FIT = (
    "The check calls partial_fit, which refuses class_weight='balanced' (it needs the whole data's "
    "class counts), with scikit-learn's SGDClassifier's message.")


def expected_failed_checks(estimator):
    failed = dict(EXPECTED_FAILED.get((type(estimator).__name__, estimator.solver), {}))
    if getattr(estimator, "loss", None) == "poisson":
        failed["check_regressors_train"] = _POISSON_SAME_AS_SKLEARN
    if getattr(estimator, "class_weight", None) == "balanced":
        for check in ("check_estimators_partial_fit_n_features", "check_fit_score_takes_y",
                      "check_n_features_in_after_fitting"):
            failed[check] = _BALANCED_PARTIAL_FIT
    return failed


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
