"""Face body, training, thresholds, bundles, evaluation and the inference pipeline."""
