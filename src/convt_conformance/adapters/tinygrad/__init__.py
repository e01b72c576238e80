"""tinygrad: ``Tensor.conv_transpose2d`` (rank-generic) on the CPU device, or on the PYTHON device
where the CPU device cannot compile (no clang)."""
