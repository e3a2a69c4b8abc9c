"""FusedAdam: Keras' Adam update, one kernel a variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer.optimizers import FusedAdam


def _run(optimizer: keras.optimizers.Optimizer, steps: int) -> list[np.ndarray]:
    """The variables after ``steps`` updates with fixed gradients, in a tf.function as the
    trainer runs them; then the optimizer's own variables (iterations, m and v slots)."""
    rng = np.random.default_rng(0)
    variables = [
        keras.Variable(rng.standard_normal(shape).astype(np.float32), name=f"w{i}")
        for i, shape in enumerate([(3, 4), (5,), (2, 2, 1, 3)])
    ]
    gradients = [
        [tf.constant(rng.standard_normal(v.shape).astype(np.float32)) for v in variables]
        for _ in range(steps)
    ]
    optimizer.build(variables)

    @tf.function
    def update(grads):
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    for grads in gradients:
        update(grads)
    return [np.asarray(v) for v in [*variables, *optimizer.variables]]


@pytest.mark.parametrize("beta_1, beta_2", [(0.0, 0.99), (0.5, 0.999)])
def test_fused_adam_updates_equal_keras_adams(beta_1, beta_2):
    reference = _run(keras.optimizers.Adam(7e-3, beta_1=beta_1, beta_2=beta_2), steps=5)
    fused = _run(FusedAdam(7e-3, beta_1=beta_1, beta_2=beta_2), steps=5)
    assert len(fused) == len(reference)
    # The kernel forms 1 - β in float32 (Keras in float64, then rounds): 1.3e-5 apart at 0.999.
    for got, want in zip(fused, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=3e-5, atol=1e-7)
    initial = _run(FusedAdam(7e-3), steps=0)
    assert not any(np.array_equal(a, b) for a, b in zip(initial[:3], fused[:3], strict=True))


def test_fused_adam_keeps_keras_adams_variable_names():
    variables = [keras.Variable(np.zeros((2, 3), np.float32), name="kernel")]
    names = []
    for optimizer in (keras.optimizers.Adam(), FusedAdam()):
        optimizer.build(variables)
        names.append(
            [(v.path.split("/")[0].rstrip("_0123456789"), v.name) for v in optimizer.variables]
        )
    assert names[0] == names[1]
    assert names[1][0] == ("adam", "iteration")


def test_fused_adam_has_no_amsgrad():
    with pytest.raises(ValueError, match="AMSGrad"):
        FusedAdam(amsgrad=True)
