"""The benchmark CLI (``zoo-bench``) and its suites."""
