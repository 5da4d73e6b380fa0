"""The one error every BeeXL decoder raises for bytes it will not accept."""


class FormatError(ValueError):
    """Bytes that are not a valid BeeXL v1 structure: bad magic, unknown version, checksum
    mismatch, a field out of range, or a truncated buffer. Decoders raise nothing else."""
