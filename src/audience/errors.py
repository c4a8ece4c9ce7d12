"""Every error a user can cause, under one base class.

```
AudienceError
├── DefinitionError(ValueError)      bad YAML/JSON; carries `where` (file:line) and `field`
│   ├── UnreadableFile               a definitions file that cannot be read, or is not UTF-8 text
│   ├── InvalidYAML                  the text is not YAML
│   ├── MissingKind                  a document without `kind`
│   ├── UnknownAttribute             a column the table does not have
│   ├── OperatorTypeMismatch         an operator that does not fit the column's type
│   ├── InvalidValue                 a value of the wrong shape for its operator
│   │   └── ValueTypeMismatch        a number, boolean or date given for a text column
│   ├── NestingTooDeep               a condition tree deeper than the limit
│   ├── UnknownReference             a segment, destination or table that does not exist
│   │   └── DraftReference           a segment used elsewhere that exists only as a draft
│   ├── CycleError                   segments that refer to each other in a loop
│   ├── PercentagesError             treatment and control percentages that do not total 100
│   ├── ScheduleError                a schedule that is malformed, or could never run from now
│   ├── FileNameCollision            two files a campaign sends would have the same name
│   ├── UnsafeQuery                  an orchestration's SQL that does not parse, or writes or
│   │                                reads files (anything but one read-only query)
│   └── TemplateError                a filename template that is unsafe or names unknown values
├── WorkspaceError                   no workspace, or a broken audience.toml
│   └── SecretKeyError               no secret key set, or one that opens none of the secrets
├── InvalidInput(ValueError)         a bad argument that is not a definition (a role, a name)
├── NotSignedIn                      no credentials, or wrong ones (the API's 401)
├── TooManySignIns                   sign-ins refused for a while after repeated failures (429)
├── NotAllowed                       signed in, but the role does not allow it (the API's 403)
├── NotFound                         a named definition or run that does not exist
├── EngineError                      the database said no (bad SQL, lost connection)
│   ├── EngineUnavailable            the engine cannot start or be reached (Java or pyspark
│   │                                missing, a Spark master that does not answer)
│   └── MissingTable                 a table the settings name is not where they say
├── DeliveryError
│   ├── TransientDeliveryError       retried with back-off (timeouts, 429, 5xx)
│   └── TerminalDeliveryError        fails the run at once (403, bucket missing, bad key)
│       └── DuplicateFileName        two files of one run would share one final name
└── StateError                       conflicts: already running, retrying a success
    ├── LeaseLost                    an attempt whose run another worker has taken over
    └── DemoTablesExist              sample data would replace tables the demo did not make
```

Front ends turn these into one readable line (CLI, exit code 1) or an HTTP status; anything else
reaching a user is a bug.
"""

from __future__ import annotations

import json
from datetime import date


class AudienceError(Exception):
    """Base of every error Audience raises on purpose."""


class DefinitionError(AudienceError, ValueError):
    """A definition is wrong; `where` is `file:line` when known, `field` the path inside it."""

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None) -> None:
        self.message = message
        self.where = where
        self.field = field
        self.location = "body"
        """Where the API's request holds the field: body, or a query or path parameter."""
        super().__init__(self._render())

    def _render(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        field = f"{self.field}: " if self.field else ""
        return f"{prefix}{field}{self.message}"

    def located(self, where: str | None = None, field: str | None = None) -> DefinitionError:
        """Return the same error with a location filled in where it was missing."""
        self.where = self.where or where
        self.field = self.field or field
        self.args = (self._render(),)
        return self


class UnreadableFile(DefinitionError):
    """A definitions file cannot be read, or is not UTF-8 text (a binary file, another encoding)."""


class InvalidYAML(DefinitionError):
    """The file is not valid YAML."""


class MissingKind(DefinitionError):
    """A document has no `kind`, or one Audience does not know."""


class UnknownAttribute(DefinitionError):
    """A condition or attribute names a column its table does not have."""


class OperatorTypeMismatch(DefinitionError):
    """An operator was used on a column whose type it does not fit."""


class InvalidValue(DefinitionError):
    """A value has the wrong shape for its operator (a list where one value belongs, …)."""


class ValueTypeMismatch(InvalidValue):
    """A number, boolean or date given for a text column; never converted, since YAML has
    already changed it (`02130` reads as 2130, `0o17` as 15)."""

    def __init__(self, value: object, *, column: str, field: str | None = None) -> None:
        self.value = value
        self.column = column
        super().__init__(self._advice(None, field), field=field)

    def spelled(self, written: str) -> ValueTypeMismatch:
        """The same error, its advice quoting the value as the file wrote it (`"02130"`)."""
        self.message = self._advice(written, self.field)
        self.args = (self._render(),)
        return self

    def _advice(self, written: str | None, field: str | None) -> str:
        value = self.value
        if isinstance(value, bool):
            what, shown = "a boolean", json.dumps(value)
        elif isinstance(value, date):
            what, shown = "a date", value.isoformat()
        else:
            what, shown = "a number", repr(value)
        # a list item is written bare; a single value after its key
        key = "" if field is not None and field.rsplit(".", 1)[-1].isdigit() else "value: "
        return (
            f"value {shown} is {what} but {self.column} is text; "
            f"write it quoted: {key}{json.dumps(written or shown)}"
        )


class NestingTooDeep(DefinitionError):
    """A condition tree is nested deeper than Audience accepts."""


class UnknownReference(DefinitionError):
    """A definition names a segment, destination or table that does not exist."""


class DraftReference(UnknownReference):
    """A definition uses a segment that exists only as a draft: others see active versions."""


class CycleError(DefinitionError):
    """Segments refer to each other in a loop."""


class PercentagesError(DefinitionError):
    """The percentages of a sub-audience do not total exactly 100."""


class ScheduleError(DefinitionError):
    """A schedule is malformed (bad cron, unknown time zone, ends before it starts) or could
    never run from now on (a one-time run in the past)."""


class FileNameCollision(DefinitionError):
    """Two files one run of a campaign sends would have the same name in the same place."""


class UnsafeQuery(DefinitionError):
    """A query that does not parse, or does more than read the customer database."""


class TemplateError(DefinitionError):
    """A filename template is unsafe or uses values that do not exist."""


class WorkspaceError(AudienceError):
    """The workspace is missing or its settings are broken."""


class SecretKeyError(WorkspaceError):
    """No secret key is set (`AUDIENCE__SECRETS__KEY` or `[secrets] key_file`), or the key set
    cannot open a stored secret (it was rotated away, or belongs to another workspace)."""


class InvalidInput(AudienceError, ValueError):
    """An argument that is not part of a definition is wrong; `field` names it."""

    def __init__(self, message: str, *, field: str, location: str = "body") -> None:
        self.message = message
        self.field = field
        self.location = location
        """Where the API's request holds the field: body, query or path."""
        super().__init__(f"{field}: {message}")


class NotSignedIn(AudienceError):
    """No credentials, or credentials that match no one (unknown user, wrong password, a token
    that is revoked or expired). Never says which, so it reveals nothing."""


class TooManySignIns(AudienceError):
    """Too many failed sign-ins for a name or from an address; `retry_after` seconds to wait."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotAllowed(AudienceError):
    """Signed in, but the user's role does not allow this."""


class NotFound(AudienceError):
    """A named definition or run does not exist."""


class TransientError(AudienceError):
    """A failure that passes (a server's hiccup, a file held for a while): a worker runs the
    run again after a back-off; `retry_after` is the other side's hint, in seconds, when it
    gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineError(AudienceError):
    """The engine rejected a statement or could not be reached."""


class DatabaseBusy(EngineError, TransientError):
    """Another process held the customer database (DuckDB: one writing process) for longer
    than `engine.lock_timeout`."""


class EngineUnavailable(EngineError):
    """The engine cannot start or be reached: its runtime is missing (Java, pyspark) or its
    master does not answer. The message names the setting to fix."""


class MissingTable(EngineError):
    """A table the settings name (a Parquet path of the Spark engine) is not there."""


class DeliveryError(AudienceError):
    """A file could not be delivered."""


class TransientDeliveryError(DeliveryError, TransientError):
    """A delivery failure worth retrying (time-outs, throttling, server errors); `retry_after`
    is the destination's hint, in seconds, when it gave one."""


class TerminalDeliveryError(DeliveryError):
    """A delivery failure that retrying will not fix (access denied, no such bucket)."""


class DuplicateFileName(TerminalDeliveryError):
    """Two files of one run would be published under one final name; neither is sent."""


class StateError(AudienceError):
    """The request conflicts with the current state (already running, retrying a success)."""


class LeaseLost(StateError):
    """This attempt no longer holds its run: its lease expired (the worker was paused, cut off)
    and another worker took the run over. Nothing it would still record is recorded."""


class DemoTablesExist(StateError):
    """`audience demo` would replace tables it did not make (customer data, perhaps)."""
