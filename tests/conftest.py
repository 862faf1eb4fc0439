"""Hypothesis profiles: `dev` (default, quick) and `ci` (more examples; CI sets VOX_HYPOTHESIS=ci)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=400, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("VOX_HYPOTHESIS", "dev"))
