import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config';
import { pgConnection, pgConnectionProblem } from './pg-connection';

// A DATABASE_URL that names one of the parameters Earshot reads itself twice. libpq takes the last
// (psql "…?sslmode=disable&sslmode=require" insists on SSL); Earshot took the first, so appending
// `&sslmode=require` (or verify-full) to a URL that had `sslmode=disable` connected without SSL,
// silently, and `connect_timeout=5&connect_timeout=abc`, which libpq refuses, was 5 s.
describe('DATABASE_URL with a parameter named twice', () => {
  it.each([
    ['postgres://bob@db/earshot?sslmode=disable&sslmode=require', 'sslmode'],
    ['postgres://bob@db/earshot?sslmode=require&sslmode=disable', 'sslmode'],
    ['postgres://bob@db/earshot?ssl%6Dode=disable&sslmode=verify-full', 'sslmode'],
    ['postgres://bob@db/earshot?connect_timeout=5&connect_timeout=abc', 'connect_timeout'],
    ['postgres://bob@db/earshot?ssl=0&ssl=1', 'ssl'],
  ])('%s is refused, naming the parameter', (url, name) => {
    expect(pgConnectionProblem(url)).toBe(`${name} is given twice: libpq takes the last, node-postgres the first; name it once`);
    expect(() => loadConfig({ DATABASE_URL: url })).toThrow(new RegExp(`DATABASE_URL: ${name} is given twice`));
  });

  it('each named once, or other parameters repeated, is as before', () => {
    expect(pgConnectionProblem('postgres://bob@db/earshot?sslmode=require&connect_timeout=5&application_name=a&application_name=b')).toBeNull();
    expect(pgConnection('postgres://bob@db/earshot?sslmode=disable&options=-c%20x%3D1').ssl).toBe(false);
  });
});
