// Defaults and limits that more than one part of pgpulse reads, defined once.
// (The migrations in sql/ repeat MAX_ATTEMPTS_DEFAULT as a column default;
// they are frozen once released.)

/** Attempts a job gets when neither the enqueue nor its task says. */
export const MAX_ATTEMPTS_DEFAULT = 10;

/** Largest payload accepted, in bytes of JSON. @default 1 MiB */
export const MAX_PAYLOAD_BYTES_DEFAULT = 1024 * 1024;

/** Schema that holds pgpulse's tables. @default "pgpulse" */
export const SCHEMA_DEFAULT = "pgpulse";

/**
 * The longest delay (`delayMs`) or retention (`completedMs`, `failedMs`) taken:
 * 100 years of 365.25 days. Longer ones would carry a time past what Postgres
 * and a Date both hold.
 */
export const MAX_SPAN_MS = 3_155_760_000_000;
