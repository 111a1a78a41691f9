"""Domain errors raised by services; the API maps them to 4xx answers with a JSON reason."""


class DomainError(Exception):
    """A request the domain refuses. `code` is stable and machine-readable."""

    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ObjectNotFound(DomainError):
    code = "not_found"


class InvalidInput(DomainError):
    code = "invalid"


class Conflict(DomainError):
    code = "conflict"


class Forbidden(DomainError):
    code = "forbidden"


class GuardedObjectNotFound(ObjectNotFound):
    """The object a write guards (the quota consumed, the image tagged, the object a new
    quota is to guard) does not exist: 404."""

    code = "guarded_object_not_found"
