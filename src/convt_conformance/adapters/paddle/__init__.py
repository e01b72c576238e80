"""PaddlePaddle: ``paddle.nn.functional.conv{1,2,3}d_transpose`` and ``paddle.nn.Conv{1,2,3}DTranspose``
on the CPU, in both data formats, with ``output_size`` and ``'SAME'``/``'VALID'`` padding forms
and gradients through ``paddle.grad``."""
