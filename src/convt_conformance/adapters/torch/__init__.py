"""PyTorch: ``torch.nn.functional.conv_transpose{1,2,3}d`` and ``nn.ConvTranspose*d``, their
execution paths and reproducers."""
