"""One exception hierarchy for the whole gateway.

Every stage raises these; only ``api/`` turns them into a wire format (OpenAI's
``{"error": {...}}`` with the status given here).  Anything else that escapes is a
bug and is reported as a plain 500 without a traceback.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class: carries the HTTP status and OpenAI's error ``type`` / ``code``."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}
        # Set when an upstream answered with an HTTP error: its status (what `retry_on`
        # lists) and how long it asked us to wait (Retry-After), in seconds.
        self.upstream_status: int | None = None
        self.retry_after: float | None = None
        # An answer the gateway did not use still cost its tokens (execute notes them)
        self.usage: object = None


class InvalidRequest(GatewayError):
    """The client sent something we cannot serve (400)."""

    status = 400
    type = "invalid_request_error"


class ModelNotFound(GatewayError):
    """The requested ``model`` is not configured (404)."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    """The upstream (or, later, a budget) said slow down (429)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    """An upstream answered with an error or garbage (502)."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class InvalidOutput(UpstreamError):
    """The model answered, but not in the shape the request demands (502): a tool call
    or JSON answer that does not parse or validate. ``execute`` asks once more."""

    code = "invalid_model_output"
    answer = ""  # what the model said, for the feedback of a re-ask


class UpstreamUnavailable(GatewayError):
    """An upstream could not be reached, or a local model is not loaded (503)."""

    status = 503
    type = "upstream_error"
    code = "service_unavailable"


class UpstreamTimeout(GatewayError):
    """An upstream did not answer in time (504)."""

    status = 504
    type = "upstream_error"
    code = "gateway_timeout"


class AuthenticationFailed(GatewayError):
    """A missing or wrong gateway key: OpenAI answers 401 with this type and code."""

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotAllowed(GatewayError):
    """The caller's tenant may not be served by this model (403)."""

    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class ResidencyViolation(GatewayError):
    """The request must stay on-premises (tagged, or it carries personal data) and the
    model it would go to is not local."""

    status = 403
    type = "permission_error"
    code = "residency_violation"


class PermissionDenied(GatewayError):
    """A valid key without the right to this (an operator's page) (403)."""

    status = 403
    type = "permission_error"
    code = "permission_denied"
