"""BeeXL v1: the on-disk format, bytes in and typed values out (no I/O).

specs/beexl-v1.md is the byte-exact description; tests/test_golden.py guards that the two agree.
"""

from s3free.format.errors import FormatError
from s3free.format.footer import FOOTER_SIZE, ShardFooter
from s3free.format.header import HEADER_SIZE, ShardHeader
from s3free.format.manifest import Manifest, PartEntry
from s3free.format.record import RECORD_OVERHEAD, ShardRecord, decode_record, encode_record

__all__ = [
    "FOOTER_SIZE",
    "HEADER_SIZE",
    "RECORD_OVERHEAD",
    "FormatError",
    "Manifest",
    "PartEntry",
    "ShardFooter",
    "ShardHeader",
    "ShardRecord",
    "decode_record",
    "encode_record",
]
