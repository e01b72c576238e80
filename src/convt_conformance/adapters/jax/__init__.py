"""JAX: ``jax.lax.conv_transpose`` and ``jax.lax.conv_general_dilated``, their execution paths
and reproducers."""
