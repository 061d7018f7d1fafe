import type { DataSource, QueryRunner } from 'typeorm';

/**
 * Runs `fn` in one transaction on its own connection: committed when it resolves, rolled back
 * when it throws, the connection released either way.
 */
export async function inTransaction<T>(ds: DataSource, fn: (qr: QueryRunner) => Promise<T>): Promise<T> {
  const qr = ds.createQueryRunner();
  await qr.connect();
  try {
    await qr.startTransaction();
    const out = await fn(qr);
    await qr.commitTransaction();
    return out;
  } catch (e) {
    if (qr.isTransactionActive) await qr.rollbackTransaction().catch(() => undefined);
    throw e;
  } finally {
    await qr.release();
  }
}
