"""Amazon S3 and S3-compatible stores (MinIO, R2, …): multipart uploads, checked by checksum."""
