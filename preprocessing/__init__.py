"""Stage 1: images (IDX, tfds, folders, Stacked MNIST) → normalized TFRecords + manifest (Beam)."""
