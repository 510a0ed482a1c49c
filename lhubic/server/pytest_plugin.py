"""Pytest fixtures for the local hubiC service."""
