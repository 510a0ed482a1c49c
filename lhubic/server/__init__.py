"""The local hubiC-compatible service. Filled in by the server work."""
