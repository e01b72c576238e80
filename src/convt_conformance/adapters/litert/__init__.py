"""LiteRT: ``tf.nn.conv{1,2,3}d_transpose`` converted by TensorFlow's TFLite converter and run by the
LiteRT interpreter (``ai_edge_litert``)."""
