"""Hypothesis profiles for the fuzzers (fuzz/ is not under tests/, so it registers its own).

The names and budgets match tests/conftest.py, so HYPOTHESIS_PROFILE means the same thing in
both directories. FUZZ_EXAMPLES (see fuzz/README.md) overrides the budget of every fuzzer.
"""

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile("long", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
