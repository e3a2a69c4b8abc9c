"""The GAN's optimizer: Keras' Adam, its update done by TensorFlow's one fused kernel.

Keras 3 writes Adam's update as a dozen element-wise ops a variable (multiplies, subtractions,
a square root, a division and three assignments), each a kernel of its own, which on a small
model adds up to a tenth of a train step's kernels. ``ResourceApplyAdam`` computes the same
update in one kernel a variable:

    m ← m + (g − m)(1 − β₁)      v ← v + (g² − v)(1 − β₂)
    w ← w − α·m / (√v + ε)       α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)

which is Keras' ``Adam.update_step`` term for term, except that the kernel forms 1 − β in
float32 where Keras rounds it from float64 (``tests/trainer/test_optimizers.py`` holds the two
to each other). Same variables, slots and checkpoints as ``keras.optimizers.Adam``: only how the
update is computed differs. Dense gradients only (``Gan._apply`` densifies sparse ones).
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _handle(variable) -> tf.Tensor:
    """The resource handle of a Keras or TensorFlow variable (on this device, in a
    ``tf.distribute`` update)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` (without AMSGrad) updating each variable in one kernel."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("name", "adam")  # Adam's variable paths, not fused_adam/...
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("FusedAdam has no AMSGrad; use keras.optimizers.Adam")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), local_step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
