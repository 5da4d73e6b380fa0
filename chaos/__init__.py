"""s3free's fault-injection suite: write a known dataset, break the disks, check every byte.

Layout: `data` (seeded object contents, the dataset, acknowledgements), `locate` (where a
version's manifests and shard records are on the disks), `faults` (file-level injectors),
`verify` (streaming read-back, listing, file inventory), `healing` (one scrub through the
heal service), `engine_scenarios` and `process_scenarios` (the scenarios), `report` (the
table) and `__main__` (`python -m chaos`). See chaos/README.md.
"""
