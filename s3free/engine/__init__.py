"""The object store engine: put/get/delete/list/multipart over a DiskSet and the index."""

from s3free.engine.store import ObjectStore
from s3free.engine.types import (
    BucketInfo,
    ListResult,
    ObjectInfo,
    ObjectSummary,
    PartInfo,
    ShardFault,
    UploadInfo,
)

__all__ = [
    "BucketInfo",
    "ListResult",
    "ObjectInfo",
    "ObjectStore",
    "ObjectSummary",
    "PartInfo",
    "ShardFault",
    "UploadInfo",
]
