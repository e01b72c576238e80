"""MLX: ``mlx.core.conv_transpose{1,2,3}d``, ``mlx.core.conv_general`` (input_dilation, flip=True)
and the layers ``mlx.nn.ConvTranspose{1,2,3}d`` on MLX's CPU backend."""
