"""The client libraries run offline: litellm would otherwise fetch its model cost map (and other
catalogues) from the internet when it is imported."""

from __future__ import annotations

import os

os.environ["LITELLM_OFFLINE_MODE"] = "true"
