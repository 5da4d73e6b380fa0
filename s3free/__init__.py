"""s3free: an S3-compatible, erasure-coded, self-healing object store."""

__version__ = "0.1.0"
