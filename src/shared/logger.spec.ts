import { Writable } from 'node:stream';
import { QueryFailedError } from 'typeorm';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger';

/** What a logger wrote, line by line. */
function capture(): { lines: () => string[]; stream: Writable } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return { lines: () => chunks.join('').split('\n').filter(Boolean), stream };
}

describe('the logger', () => {
  it('logs a failed statement without its parameters or the row PostgreSQL quotes', () => {
    // what node-postgres raises for a unique violation, and how TypeORM wraps it
    const pgError = Object.assign(new Error('duplicate key value violates unique constraint "customer_identity_kind_value_key"'), {
      code: '23505',
      detail: 'Key (kind, value)=(email, jane.secret@example.com) already exists.',
      constraint: 'customer_identity_kind_value_key',
    });
    const err = new QueryFailedError('INSERT INTO customer_identity (kind, value) VALUES ($1, $2)', ['email', 'jane.secret@example.com'], pgError);
    const out = capture();
    createLogger('info', {}, out.stream).error({ err }, 'a statement failed');
    const [line] = out.lines();
    // before: the address three times (parameters, detail, the driver error's detail)
    expect(line).not.toContain('jane.secret');
    const logged = JSON.parse(line!) as { err: Record<string, unknown> & { driverError: Record<string, unknown> } };
    // what finds the cause stays: message, code, constraint, the statement with its placeholders
    expect(logged.err).toMatchObject({ type: 'QueryFailedError', code: '23505', constraint: 'customer_identity_kind_value_key', query: 'INSERT INTO customer_identity (kind, value) VALUES ($1, $2)' });
    expect(logged.err.driverError).toMatchObject({ type: 'Error', code: '23505' });
  });

  it('logs a refused cast without the value PostgreSQL quotes in its message (and so in the stack)', () => {
    const pgError = Object.assign(new Error('invalid input syntax for type uuid: "jane.secret@example.com"'), { code: '22P02' });
    const err = new QueryFailedError('SELECT id FROM customer WHERE id = $1', ['jane.secret@example.com'], pgError);
    const out = capture();
    createLogger('info', {}, out.stream).error({ err }, 'a statement failed');
    const [line] = out.lines();
    expect(line).not.toContain('jane.secret');
    expect(JSON.parse(line!).err.message).toBe('invalid input syntax for type uuid: "[not logged]"');
  });

  it('keeps an ordinary error as pino writes it', () => {
    const out = capture();
    createLogger('info', {}, out.stream).warn({ err: Object.assign(new Error('boom'), { code: 'ECONNRESET' }) }, 'x');
    expect(JSON.parse(out.lines()[0]!).err).toMatchObject({ type: 'Error', message: 'boom', code: 'ECONNRESET' });
  });
});
