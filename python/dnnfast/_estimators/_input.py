"""Input checks of the estimators: scikit-learn's when it is installed, NumPy's
otherwise (scikit-learn's ``check_array`` / ``validate_data`` and its messages)."""
from __future__ import annotations

import warnings

import numpy as np

from .._validation import as_array, check_estimator_input, is_sparse, is_sparse_frame, naming, sparse_values
from ._compat import HAVE_SKLEARN, DataConversionWarning, NotFittedError

if HAVE_SKLEARN:
    from sklearn.utils.validation import _check_sample_weight, check_consistent_length, check_is_fitted, column_or_1d

    try:
        from sklearn.utils.validation import _check_y
    except ImportError:  # private: if a release drops it, X and y are checked together (messages unprefixed)
        _check_y = None

    try:
        from sklearn.utils.validation import validate_data as _sk_validate_data
    except ImportError:  # scikit-learn < 1.6
        def _sk_validate_data(est, *args, **kwargs):
            return est._validate_data(*args, **kwargs)


def _densify(X):
    return X.toarray() if hasattr(X, "toarray") else X


def _is_sparse(X):
    """A sparse matrix or array, or a DataFrame of sparse columns (taken as one)."""
    return is_sparse(X) or is_sparse_frame(X)


def _csr_or_contiguous(X):
    """A checked X as the fit takes it: a sparse one as CSR, else C-contiguous.
    check_array checks a sparse X's stored values one by one; duplicates at one
    position are summed in its dense rows, so those sums are checked too."""
    if not is_sparse(X):
        return np.ascontiguousarray(X)
    X = X.tocsr()
    if X.dtype not in (np.float32, np.float64):  # (a DataFrame of sparse bools comes through check_array as bool)
        X = X.astype(np.float64)
    # Only the sums are new: a canonical X's stored values are its dense
    # values, which check_array has checked (no second pass over them).
    if not X.has_canonical_format and not np.isfinite(sparse_values(X)).all():
        raise ValueError(f"Input X contains infinity or a value too large for {X.dtype!r}: entries stored at one "
                         "position sum to it.")
    return X


def _np_numeric(a, name):
    """``a`` as an array of real numbers (an object array's entries as
    float64), or a ValueError naming ``name``: what scikit-learn's check_array
    refuses, never coerced (NumPy would drop an imaginary part with a warning)."""
    a = np.asarray(a)
    if a.dtype.kind == "O":
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError) as exc:  # a dict, a set; 10**400 is scikit-learn's OverflowError
            raise ValueError(f"{name} must be numeric: {exc}") from None
    if a.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must have a real numeric dtype, got {a.dtype}")
    return a


def _np_check_array(X, name="X", keep_sparse=False):
    """scikit-learn's check_array (its messages): ``X`` as a 2-D finite array
    of float64 (float32 stays); with ``keep_sparse`` a sparse X as CSR, its
    stored values checked."""
    if is_sparse_frame(X):  # as check_array: its sparse matrix
        X = X.sparse.to_coo()
    sparse = keep_sparse and _is_sparse(X)
    if sparse:
        X = X.tocsr()
        _np_numeric(X.data, name)
    else:
        X = _np_numeric(X.toarray() if hasattr(X, "toarray") else X, name)
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array for {name}, got an array of shape {X.shape}; reshape your "
                         "data with array.reshape(-1, 1) for a single feature or array.reshape(1, -1) "
                         "for a single sample.")
    if X.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if not np.isfinite(sparse_values(X) if sparse else X).all():  # (a sparse X: as its dense rows sum duplicates)
        raise ValueError(f"Input {name} contains NaN or infinity.")
    return X


def check_row_weights(w, source=None, whole=True):
    """The one check of the row weights that train (sample_weight, or
    sample_weight times class_weight), in the model's dtype: each finite (a
    class weight, or a product, beyond the dtype became infinity), and with
    ``whole`` (all the data, not one rank's shard) their total by
    ``check_weight_total``. Else the fit ended in a NonFiniteError that
    blamed the data. ``source``: as for check_weight_total."""
    if not np.isfinite(w).all():
        raise ValueError(f"{source or 'sample_weight'} has row weights too large for {w.dtype.name}, the model's "
                         f"dtype (at most {np.finfo(w.dtype).max:.4g}): scale the weights down")
    if whole:
        with np.errstate(over="ignore"):  # an infinite total is refused by name
            total = np.sum(w, dtype=np.float64)
        check_weight_total(total, source)


def check_weight_total(total, source=None):
    """The one rule on the sum of the weights that train (sample_weight,
    sample_weight times class_weight, or all ranks' together): it must be
    positive, as scikit-learn's ``_check_sample_weight`` requires, and
    finite in float64, the precision the core sums them in (a batch's
    denominator). Weights that sum to zero train on nothing: every loss is
    0 and the gradient only the L2 penalty's. ``source``: the weights'
    origin, where it is not ``sample_weight`` alone."""
    if not total > 0:
        raise ValueError("Sample weights must contain at least one non-zero number."
                         + (f" The rows' weights ({source}) are all zero." if source else ""))
    if not np.isfinite(total):
        raise ValueError(f"The rows' weights ({source or 'sample_weight'}) sum beyond float64 (each is finite, "
                         "their total is not): scale them down")


def _feature_names(X):
    """scikit-learn's ``_get_feature_names``: a data frame's column names when
    they are all strings, else None; a mix of strings and other names is refused."""
    cols = getattr(X, "columns", None)
    if cols is None:
        return None
    names = np.asarray(cols, dtype=object)
    if not len(names):
        return None
    types = sorted({type(c).__qualname__ for c in names})
    if len(types) > 1 and "str" in types:
        raise TypeError("Feature names are only supported if all input features have string names, but your "
                        f"input has {types} as feature name / column name types. If you want feature names to "
                        "be stored and validated, you must convert them all to strings, by using "
                        "X.columns = X.columns.astype(str) for example. Otherwise you can remove feature / "
                        "column names from your input data, or convert them all to a non-string data type.")
    return names if types == ["str"] else None


def _check_feature_names(est, names):
    """scikit-learn's ``_check_feature_names(reset=False)``: X's column names
    ``names`` against those of the fit. Columns reordered or renamed since
    would be read as the fit's columns, and the predictions silently wrong."""
    fitted = est.__dict__.get("feature_names_in_")
    if fitted is None and names is None:
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {type(est).__name__} was fitted without feature names",
                      UserWarning, stacklevel=2)
        return
    if names is None:
        warnings.warn(f"X does not have valid feature names, but {type(est).__name__} was fitted with feature "
                      "names", UserWarning, stacklevel=2)
        return
    if len(fitted) == len(names) and np.all(fitted == names):
        return

    def listed(items):
        return "".join(f"- {n}\n" for n in items[:5]) + ("- ...\n" if len(items) > 5 else "")

    unexpected = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))
    message = "The feature names should match those that were passed during fit.\n"
    if unexpected:
        message += "Feature names unseen at fit time:\n" + listed(unexpected)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listed(missing)
    if not unexpected and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


class _InputChecks:
    """The estimators' argument checks (mixed into _BaseMLP)."""

    def _validate_X(self, X, reset, keep_sparse=False):
        """X checked and converted as scikit-learn's check_array does: a
        C-contiguous float64 (float32 stays) array, or with ``keep_sparse`` a
        sparse X as CSR (predict makes it dense a chunk of rows at a time)."""
        keep_sparse = keep_sparse and _is_sparse(X)
        check_estimator_input(X, "X", densify=not keep_sparse)
        if HAVE_SKLEARN:
            with naming("X"):
                X = _sk_validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32),
                                      reset=reset)
            return X.tocsr() if keep_sparse else np.ascontiguousarray(_densify(X))
        with naming("X"):
            names = _feature_names(X)
            if not reset:
                _check_feature_names(self, names)
            X = _np_check_array(X, keep_sparse=keep_sparse)
            X = X if keep_sparse else np.ascontiguousarray(X)
        if reset:
            self.n_features_in_ = X.shape[1]
            if names is not None:
                self.feature_names_in_ = names
            elif "feature_names_in_" in self.__dict__:
                del self.feature_names_in_
        else:
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                 f"{self.n_features_in_} features as input.")
        return X

    def _validate_Xy(self, X, y, reset, y_numeric):
        """X and y checked and converted as scikit-learn's check_X_y does:
        X a C-contiguous float64 (float32 stays) array, or a sparse X as CSR
        (the fit makes it dense a block of rows at a time, _train.rows)."""
        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, but the target y "
                             "is None.")
        self._check_y_kind(y, check_estimator_input(X, "X"))
        if HAVE_SKLEARN and _check_y is not None:
            # scikit-learn's check_X_y in its two steps, so that each message
            # names its own argument (one naming() around both would prefix X's
            # problems with "y:").
            with naming("X"):
                X = _sk_validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32),
                                      reset=reset)
            with naming("y"):
                y = _check_y(y, multi_output=True, y_numeric=y_numeric, estimator=self)
            check_consistent_length(X, y)
            X = _csr_or_contiguous(X)
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            return X, y
        if HAVE_SKLEARN:
            X, y = _sk_validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                                     y_numeric=y_numeric, dtype=(np.float64, np.float32), reset=reset)
            X = _csr_or_contiguous(X)
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            return X, y
        X = self._validate_X(X, reset, keep_sparse=True)
        y = np.asarray(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        if y_numeric and y.dtype.kind != "f":  # _check_y_kind refused what does not convert, or not to finite values
            y = y.astype(np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the "
                          "shape of y to (n_samples, ), for example using ravel().", DataConversionWarning,
                          stacklevel=3)
            y = y.ravel()
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        return X, y

    def _check_y_kind(self, y, n_rows=None):
        """The targets' pre-check (see ``check_estimator_input``): a
        classifier's labels may be strings, a regressor's targets must be
        numbers. With ``n_rows``, y must have that many rows."""
        if self._is_classifier():
            arr = as_array(y, "y", numeric_kinds="biufcOUS")
        else:
            check_estimator_input(y, "y")
            arr = as_array(y, "y", numeric_kinds="biufcO")
            if arr.dtype.kind == "O":  # its entries as numbers: 10**400 and 1j named, None a NaN refused below
                with naming("y"):
                    arr = _np_numeric(arr, "y")
        n_y = arr.shape[0] if arr.ndim else None
        if arr.dtype.kind == "c":
            raise ValueError("y: Complex data not supported")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():  # scikit-learn's messages
            if np.isnan(arr).any():
                raise ValueError("Input y contains NaN.")
            raise ValueError(f"Input y contains infinity or a value too large for {arr.dtype!r}.")
        if n_rows is not None and n_y is not None and n_y != n_rows:
            raise ValueError(f"y has {n_y} rows but X has {n_rows} (inconsistent numbers of samples: "
                             f"[{n_rows}, {n_y}])")

    def _score(self, X, y, sample_weight, metric):
        """score: ``metric(y, predict(X), sample_weight)`` as scikit-learn's
        mixins compute it, each argument checked under its own name (one
        naming("y") around it all said "y: Input X contains NaN") and
        sample_weight by fit's rules (a negative one was scored)."""
        self._check_fitted()
        if y is None:
            raise ValueError("y: score needs the true targets, got None")
        self._check_y_kind(y, check_estimator_input(X, "X"))
        y_pred = self.predict(X)  # X's checks: their messages name X
        # float64 as scikit-learn's metrics take them, whatever the model's dtype
        sw = self._check_sample_weight(sample_weight, y_pred, dtype=np.float64)
        with naming("y"):
            return metric(y, y_pred, sample_weight=sw)

    def _check_sample_weight(self, sample_weight, X, whole=True, dtype=None):
        """sample_weight as a 1-D array of ``dtype`` (default X's), one per row
        of X. ``whole``: X is all the data; False for one rank's shard, whose
        weights may all be zero (the caller checks the sum over ranks)."""
        if sample_weight is None:
            return None
        dtype = X.dtype if dtype is None else np.dtype(dtype)
        check_estimator_input(sample_weight, "sample_weight")
        with naming("sample_weight"):  # scikit-learn's messages ("Complex data not supported") say not which
            if HAVE_SKLEARN and whole:
                sw = _check_sample_weight(sample_weight, X, dtype=dtype)
            else:
                sw = _np_numeric(sample_weight, "sample_weight").astype(dtype, copy=False)
                if sw.ndim == 0:
                    sw = np.full(X.shape[0], sw, dtype=dtype)
                if sw.ndim != 1 or sw.shape[0] != X.shape[0]:
                    raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({X.shape[0]},)!")
                if not np.isfinite(sw).all():
                    raise ValueError("sample_weight contains NaN or infinity.")
            if np.any(sw < 0):
                raise ValueError("Negative values in data passed to sample_weight.")
            sw = np.ascontiguousarray(sw, dtype=dtype)
            check_row_weights(sw, whole=whole)  # the total's: scikit-learn's check (older releases lack it)
        return sw

    def _check_fitted(self):
        if HAVE_SKLEARN:
            check_is_fitted(self)
        elif not hasattr(self, "coefs_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")
