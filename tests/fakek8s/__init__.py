# SPDX-License-Identifier: MIT
"""fakek8s: a fake Kubernetes API server for reflex's tests."""

from .apiserver import (DEFAULT_TOKEN, DEFAULT_USER, Fault,  # noqa: F401
                        FakeAPIServer, RequestRecord)
from . import fixtures  # noqa: F401

__all__ = ["FakeAPIServer", "Fault", "RequestRecord", "DEFAULT_TOKEN",
           "DEFAULT_USER", "fixtures"]
