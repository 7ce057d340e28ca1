"""Hostile input through the real CLI (a package, so that it shares the chaos helpers)."""
