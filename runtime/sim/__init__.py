"""The simulator: a local HTTP server speaking the OpenAI and Anthropic wire formats.

Offline runs and tests send the same HTTP requests as production to it. It answers from the mock
scripts a test installs (``POST /_sim/runs/{run}``), or else with deterministic, schema-valid
answers derived from a seed, and injects faults on demand (``POST /_sim/faults``). See
:mod:`vox.runtime.sim.server` for the routes and the ways to run it.
"""

from vox.runtime.sim.server import SimServer, run_forever, running_simulator, start_process

__all__ = ["SimServer", "run_forever", "running_simulator", "start_process"]
