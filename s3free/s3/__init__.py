"""The S3 protocol layer: requests, signatures, operation handlers, error XML."""
