"""Verified streaming transfers and static large objects."""


class TransferMixin:
    """Upload and download overrides that `lhubic.Hubic` inherits."""
