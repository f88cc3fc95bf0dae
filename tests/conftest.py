import sys
from pathlib import Path

# Tests import helpers (factory, local servers) as plain modules from this folder.
sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import HealthCheck, settings  # noqa: E402

# Property tests assert what holds, not how fast it runs: Hypothesis's per-example deadline (200 ms) and
# its too-slow health check are timings, and on a shared 2-core CI machine a timing is a coin toss.
# Speed is measured by the benchmarks. Tests that set their own settings keep these unless they say so.
settings.register_profile("clientshift", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("clientshift")
