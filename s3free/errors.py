"""Typed storage errors raised by the engine and the layers below it.

The S3 layer maps each of these to one S3 error code in a single table; nothing below it knows
about HTTP. Each class names the condition, never the transport.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidArgument(StorageError):
    """A caller passed a value the engine refuses (bad range, bad part number, ...)."""


class InvalidBucketName(InvalidArgument):
    pass


class InvalidObjectKey(InvalidArgument):
    """Empty key, key over 1024 bytes, or a key with characters the store cannot keep."""


class KeyTooLong(InvalidObjectKey):
    """A key over 1024 bytes of UTF-8."""


class NoSuchBucket(StorageError):
    pass


class BucketAlreadyExists(StorageError):
    pass


class BucketNotEmpty(StorageError):
    pass


class NoSuchKey(StorageError):
    pass


class NoSuchUpload(StorageError):
    pass


class InvalidPart(StorageError):
    """A part named in CompleteMultipartUpload is missing or its ETag does not match."""


class InvalidPartOrder(StorageError):
    pass


class EntityTooSmall(StorageError):
    """A part other than the last is smaller than the minimum part size."""


class InvalidRange(StorageError):
    pass


class InvalidPartNumber(StorageError):
    """GET/HEAD with a partNumber the object does not have."""


class PreconditionFailed(StorageError):
    """A conditional write's condition did not hold at commit time; nothing was committed."""


class IncompleteBody(StorageError):
    """The stream ended before (or ran past) the size the caller announced."""


class BadDigest(StorageError):
    """The body's MD5 does not match the one the caller announced."""


class InsufficientWriteQuorum(StorageError):
    """Fewer shards than the write quorum could be written; nothing was committed."""


class StorageFull(InsufficientWriteQuorum):
    """The write quorum was missed because disks have no room for new data (ENOSPC, or free
    space below their reserve): nothing was committed, and retrying at once will not help;
    deleting objects or adding capacity will. Reads and deletes still work."""


class DataUnavailable(StorageError):
    """More than m shards of a block are bad or missing: the bytes cannot be rebuilt.

    Wrong bytes are never returned instead. The fields say which version and block, how many
    good shards were found of the k needed, and which shards were unread only because their
    disk is offline: with those back the block may read again (`may_come_back`), without
    them the data is lost (until the bad shards are restored). Callers decide on the fields,
    never on the message text.
    """

    def __init__(
        self,
        message: str,
        *,
        bucket: str = "",
        key: str = "",
        version_id: str = "",
        part_number: int = 0,
        block_index: int = 0,
        good: int = 0,
        needed: int = 0,
        offline_shards: tuple[int, ...] = (),
    ) -> None:
        super().__init__(message)
        self.bucket = bucket
        self.key = key
        self.version_id = version_id
        self.part_number = part_number
        self.block_index = block_index
        self.good = good
        self.needed = needed
        self.offline_shards = offline_shards

    @property
    def may_come_back(self) -> bool:
        """Whether the good shards plus those on offline disks would be enough."""
        return bool(self.offline_shards) and self.good + len(self.offline_shards) >= self.needed


class DiskSetError(StorageError):
    """The configured disks do not form a usable set (foreign disk, too few disks, ...)."""


class StoreInUse(DiskSetError):
    """Another process (a running server, or `s3free disk` working directly on the disks)
    holds this store's index."""
