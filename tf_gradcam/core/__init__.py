"""Pick the layer and the score, then run the engine."""
