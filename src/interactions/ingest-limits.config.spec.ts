import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config';

// EARSHOT_INGEST_EARLIEST_OCCURRED_AT went through Date.parse, which reads a date-time without an
// offset in the host's time zone: "2020-01-01T00:00:00" was 2020-01-01T00:00Z on a UTC host and
// 2019-12-31T10:00Z under TZ=Pacific/Kiritimati, so two replicas refused different messages.
// Node applies a change of process.env.TZ at once: these run as on such a host.

const hostZone = process.env.TZ;
const earliest = (value: string) => loadConfig({ EARSHOT_INGEST_EARLIEST_OCCURRED_AT: value }).ingestLimits.earliestOccurredAt;

describe('EARSHOT_INGEST_EARLIEST_OCCURRED_AT on a host whose time zone is not UTC', () => {
  afterEach(() => {
    if (hostZone === undefined) delete process.env.TZ;
    else process.env.TZ = hostZone;
  });

  it.each(['Pacific/Kiritimati', 'Pacific/Pago_Pago', 'America/Santiago'])('means the same instant under TZ=%s as on a UTC host', (zone) => {
    process.env.TZ = zone;
    expect(new Date(2020, 0, 1).getTime()).not.toBe(Date.UTC(2020, 0, 1)); // the zone took effect
    expect(earliest('2020-01-01')).toBe(Date.UTC(2020, 0, 1));
    expect(earliest('2020-01-01T00:00:00Z')).toBe(Date.UTC(2020, 0, 1));
    expect(earliest('2020-01-01T00:00Z')).toBe(Date.UTC(2020, 0, 1));
    expect(earliest('2020-01-01T05:30:00.5+05:30')).toBe(Date.UTC(2020, 0, 1, 0, 0, 0, 500));
    // without an offset the instant would be the host's: refused, as every ambiguous value is
    for (const local of ['2020-01-01T00:00:00', '2020-01-01T00:00', '2020-01-01 00:00:00', 'Jan 1 2020', '2020/01/01', '01/01/2020']) {
      expect(() => earliest(local), local).toThrow(/EARSHOT_INGEST_EARLIEST_OCCURRED_AT=.*: expected an ISO-8601 date \(a UTC day\) or date-time with its offset/);
    }
  });
});

describe('EARSHOT_INGEST_EARLIEST_OCCURRED_AT bounds', () => {
  // the bound was Date.UTC(1, 0, 1), which JavaScript reads as 1901, while the message promised
  // "after year 0": 0001-01-01 was refused with a reason it met
  it('takes 1901-01-01 and refuses earlier dates with a message that names the bound', () => {
    expect(earliest('1901-01-01')).toBe(Date.UTC(1901, 0, 1));
    for (const early of ['1900-12-31', '0001-01-01', '0001-01-01T00:00:00Z']) {
      expect(() => earliest(early), early).toThrow(/EARSHOT_INGEST_EARLIEST_OCCURRED_AT=.*on or after 1901-01-01/);
    }
  });
});

describe('EARSHOT_INGEST_EARLIEST_OCCURRED_AT on a day that does not exist', () => {
  // Date.parse rolls the day over: 2020-02-31 was read as 2020-03-02, without a word
  it('refuses it instead of moving it to the next month', () => {
    for (const impossible of ['2020-02-31', '2021-02-29', '2020-04-31T10:00Z', '2020-02-30T00:00:00+01:00', '2020-00-10', '2020-01-00']) {
      expect(() => earliest(impossible), impossible).toThrow(/EARSHOT_INGEST_EARLIEST_OCCURRED_AT=.*: expected an ISO-8601 date/);
    }
    expect(earliest('2020-02-29')).toBe(Date.UTC(2020, 1, 29));
    expect(earliest('2020-12-31T23:59:59Z')).toBe(Date.UTC(2020, 11, 31, 23, 59, 59));
  });
});
