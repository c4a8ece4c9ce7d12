"""Every `AudienceError` a request can cause, as its HTTP status: bad input is a 422 naming the
field (the shape FastAPI gives its own validation errors), a missing thing a 404, a conflict
with the current state a 409; never a 500 for something the caller did."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from audience.errors import (
    AudienceError,
    DefinitionError,
    DeliveryError,
    EngineError,
    InvalidInput,
    NotAllowed,
    NotFound,
    NotSignedIn,
    StateError,
    TooManySignIns,
    WorkspaceError,
)

STATUS_BY_ERROR: tuple[tuple[type[AudienceError], int], ...] = (
    (DefinitionError, 422),
    (InvalidInput, 422),
    (NotSignedIn, 401),
    (TooManySignIns, 429),
    (NotAllowed, 403),
    (NotFound, 404),
    (StateError, 409),
    (EngineError, 502),
    (DeliveryError, 502),
    (WorkspaceError, 503),
)
"""First match wins; an AudienceError not listed is a 400."""


def status_of(error: AudienceError) -> int:
    """The HTTP status that answers `error`."""
    return next((status for kind, status in STATUS_BY_ERROR if isinstance(error, kind)), 400)


@contextmanager
def fields_of(location: str, *names: str, **renamed: str) -> Iterator[None]:
    """Say where a request's field is when a check deeper down names it: an `InvalidInput` (or
    `DefinitionError`) on one of `names` raised inside becomes `loc: [location, name]`, and
    one on a key of `renamed` `loc: [location, renamed[key]]` (a query or path parameter, or a
    body field the route calls otherwise)."""
    try:
        yield
    except (InvalidInput, DefinitionError) as error:
        # Only the fields named: an error about something else (a stored definition that
        # no longer compiles) keeps its own place.
        if error.field in names or error.field in renamed:
            error.field = renamed.get(error.field, error.field)
            error.location = location
        raise


def _field_error(error: DefinitionError | InvalidInput) -> list[dict[str, object]]:
    field = error.field or ""
    location = error.location
    return [
        {
            "loc": [location, *field.split(".")] if field else [location],
            "msg": error.message,
            "type": type(error).__name__,
            **(
                {"where": error.where} if isinstance(error, DefinitionError) and error.where else {}
            ),
        }
    ]


async def answer(request: Request, error: Exception) -> JSONResponse:
    """The API's answer to an AudienceError: its status, and the field or the message."""
    del request
    assert isinstance(error, AudienceError)
    status = status_of(error)
    if isinstance(error, DefinitionError | InvalidInput):
        body: dict[str, object] = {"detail": _field_error(error)}
    else:
        body = {"detail": " ".join(str(error).split()), "error": type(error).__name__}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(error, TooManySignIns):
        headers = {"Retry-After": str(max(1, round(error.retry_after)))}
    return JSONResponse(body, status_code=status, headers=headers)


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    # FastAPI's own 422, without the `input` it would echo: a password or a secret's value.
    del request
    assert isinstance(error, RequestValidationError)
    problems = [
        {key: value for key, value in problem.items() if key not in {"input", "ctx", "url"}}
        for problem in error.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(problems)}, status_code=422)


def install(app: FastAPI) -> None:
    """Answer every AudienceError by its status, and bad requests without echoing them."""
    app.add_exception_handler(AudienceError, answer)
    app.add_exception_handler(RequestValidationError, _invalid_request)
