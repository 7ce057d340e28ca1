"""Tests of runner.limiter and runner.backoff (a package, so that they share limiter_support)."""
