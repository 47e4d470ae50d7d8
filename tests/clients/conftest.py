"""The client libraries as their users run them, offline: litellm would otherwise fetch its
model cost map (and other catalogues) from the internet when it is imported."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
