"""Tests of mlrun plan, saved plans and their renderers (a package, to share plan_support)."""
