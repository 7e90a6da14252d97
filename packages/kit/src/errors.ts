/**
 * Domain errors. They carry no transport codes (`src/domain/` may import this module via
 * `@deai/kit/errors`); server/error-mapping.ts is the one place that maps them to gRPC
 * codes and HTTP statuses.
 */
export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "unauthenticated"
  | "permission_denied"
  | "resource_exhausted"
  | "unavailable"
  | "deadline_exceeded"
  | "aborted"
  | "unimplemented"
  | "internal";

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class InvalidArgumentError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("invalid_argument", message, details);
  }
}
export class NotFoundError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("not_found", message, details);
  }
}
export class AlreadyExistsError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("already_exists", message, details);
  }
}
export class FailedPreconditionError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("failed_precondition", message, details);
  }
}
export class UnauthenticatedError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("unauthenticated", message, details);
  }
}
export class PermissionDeniedError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("permission_denied", message, details);
  }
}
export class ResourceExhaustedError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("resource_exhausted", message, details);
  }
}
export class UnavailableError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("unavailable", message, details);
  }
}
export class DeadlineExceededError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("deadline_exceeded", message, details);
  }
}
/** A concurrent change won (optimistic locking, a lost race): the caller may retry. */
export class AbortedError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("aborted", message, details);
  }
}
export class UnimplementedError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("unimplemented", message, details);
  }
}
