// Checks of request fields that several use cases share; each failure names its field.
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";

import type { Money } from "@deai/contracts/deai/common/v1/common_pb";
import { MAX_AMOUNT } from "@deai/kit";
import { InvalidArgumentError } from "@deai/kit/errors";

const REGION = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** A positive amount in the deployment's currency. */
export function positiveMoney(m: Money | undefined, field: string, currency: string): bigint {
  if (!m) throw new InvalidArgumentError(`${field} is required`, { field });
  if (m.currency !== currency)
    throw new InvalidArgumentError(`${field}.currency must be ${currency}, got ${JSON.stringify(m.currency).slice(0, 40)}`, {
      field: `${field}.currency`,
    });
  if (m.micros <= 0n) throw new InvalidArgumentError(`${field}.micros must be positive, got ${m.micros}`, { field: `${field}.micros` });
  if (m.micros > MAX_AMOUNT) throw new InvalidArgumentError(`${field}.micros is out of range`, { field: `${field}.micros` });
  return m.micros;
}

export function text(s: string, field: string, max: number, opts: { required?: boolean } = {}): string {
  if (opts.required && s.length === 0) throw new InvalidArgumentError(`${field} is required`, { field });
  if (s.length > max) throw new InvalidArgumentError(`${field} is longer than ${max} characters`, { field });
  return s;
}

export function region(s: string, field: string): string {
  if (!REGION.test(s)) throw new InvalidArgumentError(`${field} must be a lowercase region label like "eu-west"`, { field });
  return s;
}

export function positiveInt(n: number, field: string, max: number): number {
  if (!Number.isSafeInteger(n) || n <= 0 || n > max)
    throw new InvalidArgumentError(`${field} must be between 1 and ${max}, got ${n}`, { field });
  return n;
}

/** A duration in ms (positive, at most `maxMs`); undefined when unset. */
export function durationOf(d: Duration | undefined, field: string, maxMs: number): number | undefined {
  if (!d) return undefined;
  if (d.seconds < 0n || d.nanos < 0 || (d.seconds === 0n && d.nanos === 0))
    throw new InvalidArgumentError(`${field} must be positive`, { field });
  if (d.seconds > BigInt(Math.floor(maxMs / 1000))) throw new InvalidArgumentError(`${field} is longer than ${maxMs / 1000} s`, { field });
  return durationMs(d);
}

/** A timestamp as a Date in a sane range (years 2000–2200); undefined when unset. */
export function timeOf(t: Timestamp | undefined, field: string): Date | undefined {
  if (!t) return undefined;
  const ms = Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
  if (!Number.isFinite(ms) || ms < Date.UTC(2000, 0, 1) || ms > Date.UTC(2200, 0, 1))
    throw new InvalidArgumentError(`${field} is out of range`, { field });
  return new Date(ms);
}

/** An idempotency key: 1 to 100 printable characters. */
export function idempotencyKey(k: string, field = "idempotency_key"): string {
  if (k.length === 0 || k.length > 100 || !/^[\x21-\x7e]+$/.test(k))
    throw new InvalidArgumentError(`${field} must be 1 to 100 printable ASCII characters`, { field });
  return k;
}
