"""lhubic: a Python client for hubiC-style object storage.

`Hubic` is a `swiftclient.client.Connection` whose authentication goes through
hubiC's OAuth2 service; the REST API is reached with `Hubic.hubic_get`,
`Hubic.hubic_post` and `Hubic.hubic_delete`.
"""

import logging

from .bulk import FileResult, FileStatus, download_tree, upload_tree
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
from .listing import iter_containers, iter_objects
from .names import validate_container_name, validate_object_name
from .store import FileTokenStore, TokenStore, make_token_store
from .transfers import ProgressCallback

__version__ = "1.0.0"

__all__ = [
    "AccessToken",
    "Clock",
    "FileResult",
    "FileStatus",
    "FileTokenStore",
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
    "ProgressCallback",
    "StorageCredentials",
    "TokenStore",
    "__version__",
    "download_tree",
    "iter_containers",
    "iter_objects",
    "make_token_store",
    "upload_tree",
    "validate_container_name",
    "validate_object_name",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
