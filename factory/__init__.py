"""The constraint-aware factory (imports zoo and kernels, never the reverse)."""
