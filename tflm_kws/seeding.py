"""One seed for Python's, NumPy's and TensorFlow's random generators.

Not `tf_keras.utils.set_random_seed`: besides these it installs a Python `random.Random` that
tf_keras then asks for `randint(1, 1e9)`, a float bound that Python 3.12 rejects (TypeError) and
3.10-3.11 deprecate (a DeprecationWarning per layer built). Without it, Keras initializers draw
their seeds from TensorFlow's global generator, which `tf.random.set_seed` makes deterministic.
"""
import random

import numpy as np
import tensorflow as tf


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
