"""The `jobrelay` command line."""
