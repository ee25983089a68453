"""Task recipes: what differs between kinds of problem (image classification, segmentation...)."""
