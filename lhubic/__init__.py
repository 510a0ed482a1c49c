"""lhubic: a Python client for hubiC-style object storage.

`Hubic` is a `swiftclient.client.Connection` whose authentication goes through
hubiC's OAuth2 service; the REST API is reached with `Hubic.hubic_get`,
`Hubic.hubic_post` and `Hubic.hubic_delete`.
"""

import logging

from .connection import Hubic
from .credentials import AccessToken, Clock, StorageCredentials
from .exceptions import (
    HubicAccessDenied,
    HubicAccessFailure,
    HubicAuthFailure,
    HubicChecksumMismatch,
    HubicClientRejected,
    HubicConfigError,
    HubicError,
    HubicInputError,
    HubicInsecureURL,
    HubicInsufficientScope,
    HubicInvalidLogin,
    HubicObjectNameError,
    HubicObjectNotFound,
    HubicRateLimited,
    HubicServerError,
    HubicServiceUnavailable,
    HubicSourceNotRewindable,
    HubicTokenExpired,
    HubicTokenFailure,
    HubicTokenRevoked,
    HubicTransferError,
)

__version__ = "1.0.0"

__all__ = [
    "AccessToken",
    "Clock",
    "Hubic",
    "HubicAccessDenied",
    "HubicAccessFailure",
    "HubicAuthFailure",
    "HubicChecksumMismatch",
    "HubicClientRejected",
    "HubicConfigError",
    "HubicError",
    "HubicInputError",
    "HubicInsecureURL",
    "HubicInsufficientScope",
    "HubicInvalidLogin",
    "HubicObjectNameError",
    "HubicObjectNotFound",
    "HubicRateLimited",
    "HubicServerError",
    "HubicServiceUnavailable",
    "HubicSourceNotRewindable",
    "HubicTokenExpired",
    "HubicTokenFailure",
    "HubicTokenRevoked",
    "HubicTransferError",
    "StorageCredentials",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
