"""OpenVINO: ``ConvolutionBackpropData`` and ``GroupConvolutionBackpropData`` in one-op models
compiled and inferred by the CPU plugin."""
