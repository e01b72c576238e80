"""TensorFlow: ``tf.nn.conv{1,2,3}d_transpose``, its execution paths and reproducers."""
