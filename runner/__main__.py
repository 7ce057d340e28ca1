"""``python -m runner`` is ``mlrun``."""

from runner.cli import main

main()
