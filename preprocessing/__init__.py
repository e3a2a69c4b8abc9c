"""Stage 1: images (IDX, tfds, folders, Stacked MNIST) → normalized TFRecords + manifest (Beam)."""

# The job's own flags (defined in preprocessing/run.py); pipeline.run routes these here.
JOB_FLAGS = (
    "source",
    "classes",
    "digits",
    "num_shards",
    "compression",
    "tfds_data_dir",
    "image_size",
    "channels",
    "background",
    "max_bad_images",
    "test_percent",
    "stacked_mnist",
    "stacked_examples",
    "train_examples",
)
