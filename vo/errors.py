"""The error tree of the protocol core: every error a user can cause, with its HTTP status.

``vo/`` raises these; ``app/errors.py`` renders them as DALI error documents (VOTable with
``INFO name="QUERY_STATUS" value="ERROR"``, DALI 1.1 section 4.2). Messages are written for
the user: they name the parameter and say what is wrong, and never carry internals.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "FatalError",
    "MultiValuedParamNotSupported",
    "NotFoundError",
    "QuotaError",
    "RequestTimeoutError",
    "TooLargeError",
    "TransientError",
    "UnsupportedEncodingError",
    "UsageError",
    "VlkbError",
]


class VlkbError(Exception):
    """Base of all errors a response can report."""

    status: int = 500
    #: the DALI/SODA error code prefix of the message (SODA 1.0 section 5.2)
    code: str = "Error"
    #: HTTP header fields the answer carries (e.g. ``Connection: close``), as name-value pairs
    headers: tuple[tuple[str, str], ...] = ()

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(VlkbError):
    """Bad input: malformed parameter, ADQL syntax error, unknown table."""

    status = 400
    code = "UsageError"


class MultiValuedParamNotSupported(UsageError):
    """A parameter given several times where the service accepts one (SODA 1.0 section 5.2)."""

    code = "MultiValuedParamNotSupported"


class TooLargeError(UsageError):
    """The request carries more than the service accepts (an upload over its byte or row limit)."""

    status = 413


class RequestTimeoutError(UsageError):
    """The client sent its request body too slowly (RFC 9110 section 15.5.9); the connection is closed."""

    status = 408
    headers = (("Connection", "close"),)


class UnsupportedEncodingError(UsageError):
    """The request body has a content coding the service does not decode (RFC 9110 section 15.5.16:
    415, with ``Accept-Encoding`` saying what is accepted, section 12.5.3)."""

    status = 415
    headers = (("Accept-Encoding", "identity"),)


class QuotaError(VlkbError):
    """The caller is over one of its quotas (RFC 6585 section 4: 429, with ``Retry-After`` saying when to
    try again, RFC 9110 section 10.2.3). Nothing is wrong with the request itself."""

    status = 429
    code = "TooManyRequests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = (("Retry-After", str(max(1, retry_after))),)


class NotFoundError(VlkbError):
    """The named resource (dataset, job, table) does not exist or is not visible to the caller."""

    status = 404
    code = "NotFoundFault"


class AuthError(VlkbError):
    """Authentication failed (401) or the caller may not do this (403)."""

    code = "AuthorizationError"

    def __init__(self, message: str, status: int = 401, *, token_error: str | None = "invalid_token") -> None:
        super().__init__(message)
        self.status = status
        #: the RFC 6750 section 3.1 error code of the Bearer challenge sent with a 401
        self.token_error = token_error


class TransientError(VlkbError):
    """A temporary failure (database unreachable, overloaded): retrying later may work."""

    status = 503
    code = "TransientFault"


class FatalError(VlkbError):
    """A fault of the service itself."""

    status = 500
    code = "Error"
