"""The client libraries as their users run them, offline."""

from __future__ import annotations

import os

# litellm fetches its model cost map from the network when imported, unless told not to
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
