"""Internals of the scikit-learn compatible estimators (``dnnfast.estimators``)."""
