import { describe, expect, it } from "vitest";
import { isStatementTimeout } from "../db/failures";
import { persistIsolating } from "./isolate-lines";

const timeout = () =>
  Object.assign(new Error("canceling statement due to statement timeout"), {
    code: "57014",
  });
const userCancel = () =>
  Object.assign(new Error("canceling statement due to user request"), {
    code: "57014",
  });

describe("persistIsolating under a statement_timeout", () => {
  it("splits a batch that times out until the parts fit, storing every item once", async () => {
    const stored: number[] = [];
    const items = Array.from({ length: 500 }, (_, i) => i);
    const out = await persistIsolating(items, async (part) => {
      if (part.length > 100) throw timeout();
      stored.push(...part);
      return { accepted: part.length, duplicates: 0 };
    });
    expect(out.accepted).toBe(500);
    expect(out.rejected).toEqual([]);
    expect(out.timeoutSplits).toBeGreaterThan(0);
    expect(stored).toEqual(items);
  });

  it("throws (retriable) when one item alone times out, after about log2(n) attempts, rejecting nothing", async () => {
    let calls = 0;
    await expect(
      persistIsolating(
        Array.from({ length: 512 }, (_, i) => i),
        async () => {
          calls++;
          throw timeout();
        },
      ),
    ).rejects.toThrow(/statement timeout/);
    expect(calls).toBe(10);
  });

  it("splits on a cancel worded 'due to user request' too (PostgreSQL words some statement timeouts so)", async () => {
    const stored: number[] = [];
    const out = await persistIsolating([1, 2, 3, 4], async (part) => {
      if (part.length > 1) throw userCancel();
      stored.push(...part);
      return { accepted: part.length, duplicates: 0 };
    });
    expect(out).toMatchObject({ accepted: 4, rejected: [] });
    expect(stored).toEqual([1, 2, 3, 4]);
    expect(isStatementTimeout(userCancel())).toBe(true);
  });

  it("does not split on a lock timeout: it is thrown at once", async () => {
    for (const e of [
      Object.assign(new Error("canceling statement due to lock timeout"), {
        code: "55P03",
      }),
    ]) {
      let calls = 0;
      await expect(
        persistIsolating([1, 2, 3, 4], async () => {
          calls++;
          throw e;
        }),
      ).rejects.toBe(e);
      expect(calls).toBe(1);
    }
    expect(isStatementTimeout({ driverError: timeout() })).toBe(true);
  });
});
