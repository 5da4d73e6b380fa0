"""Self-healing: verify and repair object versions, the repair queue, heal-on-read, the
scrubber (rate-limited, resumable) and orphan collection. Sits above engine/."""

from s3free.heal.model import HealConfig, Job, ObjectHealth, ShardHealth
from s3free.heal.service import HealService, attach

__all__ = ["HealConfig", "HealService", "Job", "ObjectHealth", "ShardHealth", "attach"]
