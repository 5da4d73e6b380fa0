"""The victim of the "sigkill-scrub" scenario: opens the store, starts one scrub through the
heal service and reports its progress until the parent SIGKILLs it.

    python -m chaos.scrub_child <root> <profile name>

Lines (flushed): READY, SCRUB <job id>, PROGRESS <objects checked> <repaired>, DONE.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path

from chaos import healing
from chaos.data import FAST, LONG
from chaos.rig import Rig


def say(*fields: object) -> None:
    sys.stdout.write(" ".join(str(f) for f in fields) + "\n")
    sys.stdout.flush()


async def main(root: Path, profile_name: str) -> None:
    profile = FAST if profile_name == "fast" else LONG
    rig = Rig(root, profile, 0, random.Random(0))
    store = await rig.open()
    service = await healing.start_service(store)
    say("READY")
    # Slow enough that the parent's kill lands in the middle of the repairs.
    job = service.start_scrub(rate_mb_s=2.0)
    say("SCRUB", job.id)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current = service.job(job.id)
        if current is None:
            break
        say("PROGRESS", current.objects_checked, current.repaired)
        if current.state != "running":
            break
        await asyncio.sleep(0.01)
    say("DONE")
    await service.stop()
    await rig.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
