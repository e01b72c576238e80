"""ONNX: ``ConvTranspose`` run by ONNX Runtime and by onnx.reference, and torch modules exported
with ``torch.onnx.export``."""
