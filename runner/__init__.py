"""mlrun: a declarative, config-as-code batch runner for the MentionLab API."""

__version__ = "0.1.0"
