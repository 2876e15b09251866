"""G2D training pipeline: data preparation, mask synthesis, the network, the greedy stages, evaluation."""
