"""Random draws exactly as scikit-learn's MLP makes them, without importing it.

With the same ``numpy.random.RandomState`` these give the same numbers as
``sklearn.utils.shuffle`` (the epoch order) and ``train_test_split`` (the
early-stopping validation split, stratified for single-output classifiers),
so a seeded model matches scikit-learn's.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _core


def _bit_generator(rng):
    """The bit generator behind a plain ``RandomState``, whose ``shuffle`` the
    core can repeat draw for draw; None for anything else (a subclass may
    have its own shuffle)."""
    if type(rng) is not np.random.RandomState:
        return None
    return getattr(rng, "_bit_generator", None)


def shuffled(sample_idx, rng):
    """``sklearn.utils.shuffle(sample_idx, random_state=rng)``: a permutation of
    the current order. scikit-learn shuffles ``arange(n)`` and indexes with it;
    the same swaps made on a copy of the order itself give the same array
    from the same draws, without the index array (BENCHMARKS.md,
    "Measurements behind the code": shuffled).
    The swaps are made by the core on the generator's own bit generator
    (``_core.legacy_shuffle``: the draws of ``RandomState.shuffle``, without
    its branch on each rejected draw), under the generator's lock as NumPy
    takes it; where the bit generator is not reachable, by ``rng.shuffle``."""
    out = sample_idx.copy()
    bg = _bit_generator(rng)
    capsule = getattr(bg, "capsule", None)
    lock = getattr(bg, "lock", None)
    if capsule is None or lock is None or out.dtype != np.int64 or out.ndim != 1 or out.shape[0] > 2**32:
        rng.shuffle(out)
        return out
    with lock:
        _core.legacy_shuffle(capsule, out)
    return out


def approximate_mode(class_counts, n_draws, rng):
    """scikit-learn's ``_approximate_mode``: per-class draws summing to ``n_draws``,
    ties between equal remainders broken with ``rng``."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def train_validation_split(n_samples, validation_fraction, rng, stratify=None):
    """Row indices ``(train, validation)`` as ``train_test_split(..., test_size=
    validation_fraction, random_state=rng, stratify=stratify)`` returns them.

    Parameters
    ----------
    n_samples : int
    validation_fraction : float in (0, 1)
    rng : numpy.random.RandomState
    stratify : ndarray of shape (n_samples,) or None
        Class labels to keep in proportion in both parts.

    Returns
    -------
    train, validation : ndarray of int64
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction={validation_fraction} should be in the (0, 1) range "
                         "when early_stopping=True")
    n_test = math.ceil(validation_fraction * n_samples)
    n_train = n_samples - n_test
    if n_train <= 0:
        raise ValueError(f"With n_samples={n_samples} and validation_fraction={validation_fraction}, "
                         "the training set would be empty.")
    if stratify is None:
        perm = rng.permutation(n_samples)
        return perm[n_test:n_test + n_train].astype(np.int64), perm[:n_test].astype(np.int64)
    classes, y_indices, class_counts = np.unique(stratify, return_inverse=True, return_counts=True)
    n_classes = classes.shape[0]
    if np.min(class_counts) < 2:
        # scikit-learn's train_test_split stratifies on the label column as
        # strings, so it names the classes that way (['True'] for a boolean column).
        raise ValueError("The least populated classes in y have only 1 member, which is too few. The "
                         "minimum number of groups for any class cannot be less than 2. Classes with too few "
                         f"members are: {[str(c) for c in classes[class_counts < 2]]}")
    if n_train < n_classes or n_test < n_classes:
        # Said in the estimator's terms (early_stopping's validation_fraction, the
        # classes), with the way out: scikit-learn's train_test_split names its test_size.
        fix = "raise validation_fraction" if n_test < n_classes else "lower validation_fraction"
        raise ValueError(f"early_stopping: validation_fraction={validation_fraction} splits the {n_samples} rows "
                         f"into {n_train} for training and {n_test} for validation, but the split is stratified "
                         f"by class and needs at least one row of each of the {n_classes} classes in each part; "
                         f"{fix} or fit on more rows.")
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = approximate_mode(class_counts, n_train, rng)
    t_i = approximate_mode(class_counts - n_i, n_test, rng)
    train, test = [], []
    for i in range(n_classes):
        perm = rng.permutation(class_counts[i])
        members = class_indices[i].take(perm, mode="clip")
        train.extend(members[:n_i[i]])
        test.extend(members[n_i[i]:n_i[i] + t_i[i]])
    train = rng.permutation(train)
    test = rng.permutation(test)
    return np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)
