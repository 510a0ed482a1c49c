"""The local hubiC-compatible service: OAuth2 pages, REST API and Swift.

`HubicServer` runs it for tests and demonstrations; ``lhubic server`` runs it
from the command line. It needs the ``server`` extra (OpenStack Swift).
"""

from .config import AppConfig, ServerConfig, UserConfig, load_config
from .faults import Faults
from .service import HubicServer

__all__ = [
    "AppConfig",
    "Faults",
    "HubicServer",
    "ServerConfig",
    "UserConfig",
    "load_config",
]
