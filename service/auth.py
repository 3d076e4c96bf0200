"""Check the optional API keys: the guard on the API routes and the digests that settings hold."""

import hashlib
import hmac
import logging
import secrets
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.errors import MissingApiKeyError, WrongApiKeyError
from service.settings import AuthSettings

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
HASH_PREFIX = "sha256:"
_NEW_KEY_BYTES = 32


def hash_api_key(api_key: str) -> str:
    """Return the digest of an API key in the form the settings take (`sha256:<hex>`)."""
    return HASH_PREFIX + hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    """Return a new random API key (URL-safe text)."""
    return secrets.token_urlsafe(_NEW_KEY_BYTES)


class ApiKeyGuard:
    """Let a request through only with a configured API key; with no keys configured, all pass."""

    def __init__(self, auth: AuthSettings) -> None:
        """Hold the digests of the accepted keys."""
        self._digests = [
            bytes.fromhex(digest.removeprefix(HASH_PREFIX)) for digest in auth.api_key_hashes
        ]

    @property
    def is_enabled(self) -> bool:
        """Tell whether any key is configured."""
        return bool(self._digests)

    def __call__(
        self,
        connection: ASGIConnection[Any, Any, Any, Any],
        _: BaseRouteHandler,
    ) -> None:
        """Raise MissingApiKeyError (401) with no key, WrongApiKeyError (403) with a wrong one."""
        if not self._digests:
            return
        api_key = connection.headers.get(API_KEY_HEADER)
        if not api_key:
            raise MissingApiKeyError(
                detail=f"This service needs an API key; send it in the {API_KEY_HEADER} header."
            )

        digest = hashlib.sha256(api_key.encode("utf-8")).digest()
        # Compare against every digest, so the time taken does not tell which one came close.
        is_known = False
        for known in self._digests:
            is_known |= hmac.compare_digest(known, digest)
        if not is_known:
            logger.info("api key refused", extra={"path": connection.url.path})
            raise WrongApiKeyError()
