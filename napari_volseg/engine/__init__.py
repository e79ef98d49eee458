"""Training, inference and checkpoints: plain PyTorch loops that yield typed events; no Qt."""
