"""Get photos, check and label them, detect and align faces, and split them for training."""
