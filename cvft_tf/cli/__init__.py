"""Command-line entry points (absl flags + Python configs)."""
