"""The training driver: one epoch loop for every fit (see driver.py).

Layers: ``state`` (History, the training state, the settings) <- ``callbacks``
(the built-in behaviours) <- ``driver`` (the loop and the step providers);
``rows``: a sparse X made dense a block of rows at a time (the estimators).
Nothing here imports ``network``, ``distributed`` or the estimators.
"""
