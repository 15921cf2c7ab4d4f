"""Where the imgix API is: known before anything else is loaded (the CLI's help names it)."""

from __future__ import annotations

# The API's root, unless IMGIX_API_URL or --api-url says otherwise.
DEFAULT_API_URL = "https://api.imgix.com"
