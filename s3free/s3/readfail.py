"""Reads that fail for want of shards: logged once per version, not once per request.

A client retrying a lost object (awscli tries five times, an application may loop forever)
must not flood the log; the operator needs one line naming the object and what is missing.
"""

from __future__ import annotations

import logging

from s3free.errors import DataUnavailable, StorageError
from s3free.obs.ratelimit import LogLimiter

log = logging.getLogger("s3free.s3.app")

# A version that cannot be read is logged once, then at most once an hour (with the count of
# failed reads since), however often clients retry it.
UNREADABLE_LOG_EVERY_S = 3600.0
_unreadable = LogLimiter(UNREADABLE_LOG_EVERY_S)


def log_read_failure(exc: StorageError, resource: str, *, after_headers: bool = False) -> None:
    """Log a read that failed for want of shards (DataUnavailable), rate-limited per version:
    a lost object read in a retry loop must not flood the log. Other errors are the
    client's business and are not logged here."""
    if not isinstance(exc, DataUnavailable):
        return
    kind = "temporarily unavailable" if exc.may_come_back else "lost"
    skipped = _unreadable.admit((exc.bucket, exc.key, exc.version_id, kind))
    if skipped is None:
        return
    since = f" ({skipped} more failed reads of this version since the last line)" if skipped else ""
    when = " after the response headers were sent (connection aborted)" if after_headers else ""
    level = logging.WARNING if exc.may_come_back else logging.ERROR
    log.log(level, "GET %s: data %s%s: %s%s", resource, kind, when, exc, since)
