"""Issue 13's tools: the reward-scale sweep driver and the TensorBoard step-size/loss extractor."""
