"""Re-try each adapter's "the framework cannot do this" claim against the framework itself
(tests/data/claims/unsupported_claims.yaml): a framework that gained the feature is noticed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from convt_conformance.loading.yaml_io import load_yaml
from tests.conftest import DATA

CLAIMS = load_yaml((DATA / "claims" / "unsupported_claims.yaml").read_text())["claims"]


def tf_conv1d_explicit():
    import tensorflow as tf
    tf.nn.conv1d_transpose(np.ones((1, 4, 2), np.float32), np.ones((3, 2, 2), np.float32), [1, 6, 2], 1,
                           padding=[[0, 0], [1, 0], [0, 0]])


def tf_conv3d_explicit():
    import tensorflow as tf
    tf.nn.conv3d_transpose(np.ones((1, 2, 2, 2, 2), np.float32), np.ones((2, 2, 2, 2, 2), np.float32),
                           [1, 3, 3, 3, 2], [1, 1, 1, 1, 1], padding=[[0, 0]] * 5)


def tf_conv3d_grouped():
    import tensorflow as tf
    tf.nn.conv3d_transpose(np.ones((1, 2, 2, 2, 2), np.float32), np.ones((2, 2, 2, 2, 1), np.float32),
                           [1, 3, 3, 3, 4], [1, 1, 1, 1, 1], padding="VALID")


def jax_conv_transpose_groups():
    from jax import lax
    lax.conv_transpose(np.ones((1, 2, 3, 3), np.float32), np.ones((2, 1, 2, 2), np.float32), (1, 1), "VALID",
                       dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=2)


def torch_pad_pairs():
    import torch
    torch.nn.functional.conv_transpose2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2), padding=((0, 1), (0, 0)))


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c["id"])
def test_claim_still_holds(claim):
    if importlib.util.find_spec(claim["framework"]) is None:
        pytest.skip(f"{claim['framework']} is not installed")
    with pytest.raises(Exception, match=claim["raises"]):
        globals()[claim["call"]]()
