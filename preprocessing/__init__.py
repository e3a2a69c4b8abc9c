"""Stage 1: MNIST (IDX files or tfds) → normalized, sharded TFRecords + manifest, on Apache Beam."""

# The job's own flags (defined in preprocessing/run.py); pipeline.run routes these here.
JOB_FLAGS = ("source", "digits", "num_shards", "compression", "tfds_data_dir")
