"""The typed manifest and its loader."""
