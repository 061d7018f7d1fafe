import type { MigrationInterface, QueryRunner } from 'typeorm';
import { CustomerTrendAsOfToday1767300000000 } from './1767300000000-CustomerTrendAsOfToday';

/**
 * A customer's trend as of a given UTC day (`today`: days since 1970), so background work that
 * runs on an injected clock (the CRM write-back and its daily trend refresh) reads the trend of
 * its own day. `customer_trend(days, stored)` is now that function on the database's today, so the
 * rule has one body (see CustomerTrendAsOfToday for the rule).
 */
export class CustomerTrendOnDay1767500000000 implements MigrationInterface {
  name = 'CustomerTrendOnDay1767500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION customer_trend(days float8[], stored float8, today float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
      DECLARE
        rn float8 := 0; rs float8 := 0; pn float8 := 0; ps float8 := 0;
      BEGIN
        IF days IS NULL THEN RETURN stored; END IF;
        FOR k IN 1 .. coalesce(cardinality(days), 0) BY 3 LOOP
          IF days[k] > today - 30 THEN rn := rn + days[k + 1]; rs := rs + days[k + 2];
          ELSIF days[k] > today - 60 THEN pn := pn + days[k + 1]; ps := ps + days[k + 2];
          END IF;
        END LOOP;
        IF rn = 0 OR pn = 0 THEN RETURN NULL; END IF;
        RETURN rs / rn - ps / pn;
      END
      $$`);
    await q.query(`
      CREATE OR REPLACE FUNCTION customer_trend(days float8[], stored float8) RETURNS float8 LANGUAGE sql STABLE PARALLEL SAFE AS $$
        SELECT customer_trend(days, stored, ((now() AT TIME ZONE 'UTC')::date - date '1970-01-01')::float8)
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION customer_trend(float8[], float8)`);
    await q.query(`DROP FUNCTION customer_trend(float8[], float8, float8)`);
    await new CustomerTrendAsOfToday1767300000000().up(q);
  }
}
