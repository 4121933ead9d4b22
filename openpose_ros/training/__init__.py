"""Training: COCO datasets with their targets and the training loop."""
