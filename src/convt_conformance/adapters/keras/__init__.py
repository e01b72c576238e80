"""Keras 3: ``keras.ops.conv_transpose`` and the ``Conv*DTranspose`` layers on each installed
backend (each backend in a child process)."""
