"""Running the network: the backends behind one `run()` (torch, ONNX Runtime, OpenVINO), export and
quantisation, the choice of backend, and loading a model for inference (weights, checkpoints, saved folders,
downloads)."""
