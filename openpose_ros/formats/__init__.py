"""Files the package reads and writes: COCO annotations and results, the poses JSON, bags of images."""
