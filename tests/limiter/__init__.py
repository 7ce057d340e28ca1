"""Tests of runner.ratelimit and runner.backoff (a package, so that they share limiter_support)."""
