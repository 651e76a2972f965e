"""The inference core shared by online serving and batch scoring: the feature contract, the
predictors (sklearn and its verified ONNX twin) and loading a registry version."""
