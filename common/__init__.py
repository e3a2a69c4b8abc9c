"""Code shared by every stage: object storage and the data contract."""
