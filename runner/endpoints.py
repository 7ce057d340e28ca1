"""Where the API is and how it is named in the environment: constants only, cheap to import.

The client, the apply use case and the CLI's options all name these; a command that never calls
the API (``mlrun plan --offline``) learns them without importing the HTTP client.
"""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.mentionlab.io"
API_KEY_ENV = "MENTIONLAB_API_KEY"
BASE_URL_ENV = "MENTIONLAB_BASE_URL"
SANDBOX_URL = "https://sandbox.mentionlab.invalid"  # what the in-process sandbox answers as
