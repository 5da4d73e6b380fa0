"""What the tests share, one module per concern (fixtures themselves live in conftest.py).

- engine: real disks in temp dirs, streams, `open_store`, where shard files are.
- heal: the small RS(3,2) heal store, a corpus, shard paths and bit flips by record region.
- obs: scraping a real server's metrics and health endpoints.
- server: a real `s3free server` process on a loopback port, and boto3 clients for it.
- interop: what the real-client interop tests (awscli, s3cmd, minio, rclone) share.
- strategies: hypothesis strategies for the on-disk format (manifests), shared with fuzz/.
"""
