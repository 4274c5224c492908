"""Drop-in scikit-learn estimators on dnnfast's C++ core.

``dnnfast.MLPClassifier`` and ``dnnfast.MLPRegressor`` take scikit-learn's
parameters, expose its attributes and, for the same ``random_state`` and
float64 input, reproduce its numbers, training many times faster. They work
with NumPy alone (scikit-learn and SciPy are optional: with scikit-learn they
are full scikit-learn estimators; ``solver='lbfgs'`` needs SciPy).

Beyond scikit-learn: ``sample_weight`` and ``class_weight``, per-layer and
extra activations (``activation=["relu", "tanh"]``, 'leaky_relu', 'prelu',
'elu', ...), a chosen output activation for regression, ``n_threads``, a
per-epoch ``history_`` (training and validation loss, validation score,
time), a progress bar (``verbose=True``), ``plot_history()`` and
``check_gradients(X, y)``.
"""
from ._estimators._classifier import MLPClassifier
from ._estimators._regressor import MLPRegressor
from ._onnx import register_skl2onnx_when_imported

# skl2onnx.to_onnx converts pipelines that hold them (when skl2onnx is installed).
register_skl2onnx_when_imported(MLPClassifier, MLPRegressor)

__all__ = ["MLPClassifier", "MLPRegressor"]
