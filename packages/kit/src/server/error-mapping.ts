import { Code, ConnectError } from "@connectrpc/connect";

import { DomainError, type ErrorKind } from "../errors.js";

const codes: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
  aborted: Code.Aborted,
  unimplemented: Code.Unimplemented,
  internal: Code.Internal,
};

/** HTTP status per gRPC code, as in google.rpc.Code's documented mapping. */
const statuses: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

function kindFromCode(code: Code): ErrorKind {
  for (const [k, c] of Object.entries(codes)) if (c === code) return k as ErrorKind;
  return "internal";
}

/** Wraps anything thrown into a DomainError; unknown errors become `internal`. */
export function toDomainError(e: unknown): DomainError {
  if (e instanceof DomainError) return e;
  if (e instanceof ConnectError) return new DomainError(kindFromCode(e.code), e.rawMessage, {}, { cause: e });
  return new DomainError("internal", "internal error", {}, { cause: e });
}

/**
 * Longest error message sent to a client. Messages may quote the input they refuse; a 1 MiB id
 * quoted back would not fit in a gRPC status header (the stream dies with RST_STREAM).
 */
export const MAX_ERROR_MESSAGE_CHARS = 1024;

function capMessage(m: string): string {
  return m.length <= MAX_ERROR_MESSAGE_CHARS ? m : `${m.slice(0, MAX_ERROR_MESSAGE_CHARS)}… (${m.length} characters in all)`;
}

/** Maps any thrown value to the ConnectError a transport sends; internal details never leak. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) {
    if (e.rawMessage.length <= MAX_ERROR_MESSAGE_CHARS) return e;
    return new ConnectError(capMessage(e.rawMessage), e.code, e.metadata, undefined, e.cause);
  }
  const d = toDomainError(e);
  return new ConnectError(capMessage(d.message), codes[d.kind], undefined, undefined, d);
}

/** HTTP status for a ConnectError code. */
export function httpStatus(code: Code): number {
  return statuses[code] ?? 500;
}

/** The snake_case code name used in REST error bodies (`{"code":"invalid_argument",...}`). */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** Codes that mean the server, not the caller, is at fault: logged with their cause. */
export function isServerFault(code: Code): boolean {
  return code === Code.Internal || code === Code.Unknown || code === Code.DataLoss;
}
