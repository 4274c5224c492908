"""Inputs that the fuzz harnesses in ``tools/`` found to escape the input
checks, kept as tests: each must now raise ValueError or TypeError naming the
argument."""
from __future__ import annotations

import numpy as np
import pytest

import dnnfast


@pytest.mark.parametrize("value", [np.array(0.5), np.zeros((1, 2, 2)), 3.0])
@pytest.mark.parametrize("name", ["weights", "biases"])
def test_layer_array_of_wrong_rank_raises_naming_it(name, value):
    net = dnnfast.Network([2, 2], ["sigmoid"], loss="bce", dtype="float64", seed=0)
    before = net.parameters.copy()
    with pytest.raises(ValueError, match=rf"{name}\[0\]: expected shape"):
        setattr(net, name, [value])
    np.testing.assert_array_equal(net.parameters, before)
