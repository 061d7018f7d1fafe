import { describe, expect, it } from 'vitest';
import { addBusinessSeconds, parseBusinessHours } from './business-hours';

const H = 3600;

describe('business hours', () => {
  const london = parseBusinessHours('Europe/London Mon-Fri 09:00-17:00');

  it('parses zone, day ranges and the window', () => {
    expect(london).toEqual({ timeZone: 'Europe/London', days: [1, 2, 3, 4, 5], startMinute: 540, endMinute: 1020 });
    expect(parseBusinessHours('UTC Fri-Mon 08:30-12:00').days).toEqual([0, 1, 5, 6]);
    expect(parseBusinessHours('UTC Mon,Wed 08:30-12:00').days).toEqual([1, 3]);
    expect(() => parseBusinessHours('Mars/Olympus Mon-Fri 09:00-17:00')).toThrow(/time zone/);
    expect(() => parseBusinessHours('UTC Mon-Fri 17:00-09:00')).toThrow(/start before/);
    expect(() => parseBusinessHours('UTC Funday 09:00-17:00')).toThrow(/unknown day/);
  });

  it('counts every second without business hours', () => {
    expect(addBusinessSeconds(new Date('2026-11-06T16:00:00Z'), 4 * H, null).toISOString()).toBe('2026-11-06T20:00:00.000Z');
  });

  it('within one working day', () => {
    // Wednesday 10:00 GMT (London is on GMT in November) + 4 h = 14:00
    expect(addBusinessSeconds(new Date('2026-11-04T10:00:00Z'), 4 * H, london).toISOString()).toBe('2026-11-04T14:00:00.000Z');
  });

  it('carries over the night and the weekend', () => {
    // Friday 16:00 + 4 h: 1 h on Friday, 3 h on Monday from 09:00 → Monday 12:00
    expect(addBusinessSeconds(new Date('2026-11-06T16:00:00Z'), 4 * H, london).toISOString()).toBe('2026-11-09T12:00:00.000Z');
    // Saturday: the clock starts on Monday at opening
    expect(addBusinessSeconds(new Date('2026-11-07T11:00:00Z'), 2 * H, london).toISOString()).toBe('2026-11-09T11:00:00.000Z');
    // before opening on a working day
    expect(addBusinessSeconds(new Date('2026-11-04T06:00:00Z'), 1 * H, london).toISOString()).toBe('2026-11-04T10:00:00.000Z');
    // 24 business hours = three working days of 8 hours
    expect(addBusinessSeconds(new Date('2026-11-04T09:00:00Z'), 24 * H, london).toISOString()).toBe('2026-11-06T17:00:00.000Z');
  });

  it('follows the zone offset in summer and across the DST change', () => {
    // July: London is UTC+1, so 09:00 local is 08:00Z
    expect(addBusinessSeconds(new Date('2026-07-01T07:00:00Z'), 1 * H, london).toISOString()).toBe('2026-07-01T09:00:00.000Z');
    // Friday 23 Oct 2026 16:30 BST + 1 h: 30 min Friday, 30 min Monday 26 Oct (GMT after 25 Oct) → 09:30 GMT
    expect(addBusinessSeconds(new Date('2026-10-23T15:30:00Z'), 1 * H, london).toISOString()).toBe('2026-10-26T09:30:00.000Z');
  });

  it('zero seconds: now inside the window, the next opening outside it', () => {
    expect(addBusinessSeconds(new Date('2026-11-04T12:00:00Z'), 0, london).toISOString()).toBe('2026-11-04T12:00:00.000Z');
    expect(addBusinessSeconds(new Date('2026-11-04T18:00:00Z'), 0, london).toISOString()).toBe('2026-11-05T09:00:00.000Z');
  });

  it('a zone west of UTC', () => {
    const ny = parseBusinessHours('America/New_York Mon-Fri 08:00-20:00');
    // Friday 19:00 EST (Sat 00:00Z) + 2 h: 1 h Friday, 1 h Monday → Monday 09:00 EST = 14:00Z
    expect(addBusinessSeconds(new Date('2026-11-07T00:00:00Z'), 2 * H, ny).toISOString()).toBe('2026-11-09T14:00:00.000Z');
  });

  it('a working week across a day whose midnight does not exist (Santiago, DST starts at 00:00)', () => {
    const santiago = parseBusinessHours('America/Santiago Mon-Fri 09:00-17:00');
    // Friday 4 Sep 2026 15:00 (UTC-4) + 24 h: 2 h Friday, 8 h Monday 7 Sep (UTC-3 since Sunday), 8 h Tuesday, 6 h Wednesday → 15:00 = 18:00Z.
    // Before, the walk never got past Sunday 6 Sep and threw "SLA too long": every complaint of that Friday was refused at ingest.
    expect(addBusinessSeconds(new Date('2026-09-04T19:00:00Z'), 24 * H, santiago).toISOString()).toBe('2026-09-09T18:00:00.000Z');
  });

  it('a batch of due times over long SLAs takes milliseconds, not seconds', () => {
    // Before, each working day of the walk cost seven time-zone conversions: a 30-day SLA 3.5 ms per item.
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) addBusinessSeconds(new Date(Date.UTC(2026, 10, 2, 9) + i * 60_000), 30 * 24 * H, london);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
