import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ndjson, startTestApp, type TestApp } from '../support/app';

// A small data set whose figures are worked out by hand below, ingested through the pipeline
// (POST /ingest), then read back through GraphQL as a department head would.

const BASE = Date.UTC(2026, 10, 3, 8, 0, 0); // Tue 3 Nov 2026 08:00Z
const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();
const FINANCE = 'I was charged twice for my order this month and nobody answers. Not happy.';
const LOGISTICS = 'My parcel is 5 days late and the courier tracking has not moved. Terrible delivery.';
const NO_TOPIC = 'Can someone help me please?';

const inbound = (id: string, source: string, text: string, at = BASE) => ({ source, externalId: id, occurredAt: iso(at), direction: 'inbound', author: { handle: `h-${id}`, displayName: id }, text });
const reply = (id: string, source: string, to: string, afterMin: number) => ({ source, externalId: `re-${id}`, occurredAt: iso(BASE + afterMin * MIN), direction: 'outbound', inReplyTo: to, author: { handle: 'brand' }, text: 'Sorry about that, fixing it now.' });

// SLAs (defaults): x 4 h, email 24 h.
//  f1 x Finance        reply +30 min   answered   1,800 s
//  f2 x Finance        reply +5 h      ignored   18,000 s (late)
//  f3 x Finance        no reply        ignored   (open, overdue)
//  l1 email Logistics  reply +2 h      answered   7,200 s
//  l2 email Logistics  reply +30 h     ignored  108,000 s (late)
//  l3 x Logistics      reply +1 h      answered   3,600 s
//  q1 x Customer Care  no reply        ignored   (no topic → default department)
//  p1 praise: no item; f4 on 5 Nov: outside the window
const DATA = [
  inbound('f1', 'x', FINANCE), reply('f1', 'x', 'f1', 30),
  inbound('f2', 'x', FINANCE), reply('f2', 'x', 'f2', 300),
  inbound('f3', 'x', FINANCE),
  inbound('l1', 'email', LOGISTICS), reply('l1', 'email', 'l1', 120),
  inbound('l2', 'email', LOGISTICS), reply('l2', 'email', 'l2', 1800),
  inbound('l3', 'x', LOGISTICS), reply('l3', 'x', 'l3', 60),
  inbound('q1', 'x', NO_TOPIC),
  inbound('p1', 'x', 'Love it, great job team!'),
  inbound('f4', 'x', FINANCE, Date.UTC(2026, 10, 5, 9, 0, 0)),
];

const FIGURES = 'received answered ignored pending dismissed ignoredShare medianFirstResponseSeconds p90FirstResponseSeconds';

describe('listening-gap figures against a hand-computed data set', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_GAP_ESCALATION: 'off' }, 'gapmetrics');
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(DATA) });
    expect(await res.json()).toMatchObject({ accepted: DATA.length, rejected: [] });
  });
  afterAll(() => app?.close());

  it('listeningGap: totals, by department and by channel, with median and p90 first-response times', async () => {
    const r = await app.gql<{ listeningGap: Record<string, unknown> }>(
      `{ listeningGap(from: "2026-11-03T00:00:00Z", to: "2026-11-04T00:00:00Z") { ${FIGURES}
          byDepartment { department ${FIGURES} } byChannel { channel ${FIGURES} } } }`,
    );
    expect(r.errors).toBeUndefined();
    const g = r.data.listeningGap;
    // seconds answered: 1800, 3600, 7200, 18000, 108000 → median 7200; p90 at rank 3.6: 18000 + 0.6 × 90000
    expect(g).toMatchObject({ received: 7, answered: 3, ignored: 4, pending: 0, dismissed: 0, medianFirstResponseSeconds: 7200, p90FirstResponseSeconds: 72000 });
    expect(g.ignoredShare).toBeCloseTo(4 / 7, 10);
    expect(g.byDepartment).toEqual([
      // sorted by ignored, then name
      { department: 'Finance', received: 3, answered: 1, ignored: 2, pending: 0, dismissed: 0, ignoredShare: 2 / 3, medianFirstResponseSeconds: 9900, p90FirstResponseSeconds: 16380 },
      { department: 'Customer Care', received: 1, answered: 0, ignored: 1, pending: 0, dismissed: 0, ignoredShare: 1, medianFirstResponseSeconds: null, p90FirstResponseSeconds: null },
      { department: 'Logistics', received: 3, answered: 2, ignored: 1, pending: 0, dismissed: 0, ignoredShare: 1 / 3, medianFirstResponseSeconds: 7200, p90FirstResponseSeconds: 87840 },
    ]);
    expect(g.byChannel).toEqual([
      { channel: 'x', received: 5, answered: 2, ignored: 3, pending: 0, dismissed: 0, ignoredShare: 3 / 5, medianFirstResponseSeconds: 3600, p90FirstResponseSeconds: 15120 },
      { channel: 'email', received: 2, answered: 1, ignored: 1, pending: 0, dismissed: 0, ignoredShare: 1 / 2, medianFirstResponseSeconds: 57600, p90FirstResponseSeconds: 97920 },
    ]);

    const finance = await app.gql<{ listeningGap: { received: number; ignored: number; byChannel: { channel: string }[] } }>(
      `{ listeningGap(from: "2026-11-03T00:00:00Z", to: "2026-11-04T00:00:00Z", department: "Finance", channel: "x") { received ignored byChannel { channel } } }`,
    );
    expect(finance.data.listeningGap).toEqual({ received: 3, ignored: 2, byChannel: [{ channel: 'x' }] });
  });

  it('departmentInsights: volume, sentiment change, top (negative) topics with examples, open and overdue items', async () => {
    const r = await app.gql<{ departmentInsights: { department: string; volume: number; averageSentiment: number | null; previousAverageSentiment: number | null; sentimentChange: number | null; negativeShare: number; topTopics: { topic: string; volume: number }[]; topNegativeTopics: { topic: string; negativeCount: number; examples: { externalId: string }[] }[]; openItems: number; overdueItems: number }[] }>(
      `{ departmentInsights(from: "2026-11-03T00:00:00Z", to: "2026-11-04T00:00:00Z") { department volume averageSentiment previousAverageSentiment
          sentimentChange negativeShare topTopics { topic volume } topNegativeTopics { topic negativeCount examples { externalId } } openItems overdueItems } }`,
    );
    expect(r.errors).toBeUndefined();
    const by = new Map(r.data.departmentInsights.map((d) => [d.department, d]));
    const finance = by.get('Finance')!;
    expect(finance).toMatchObject({ volume: 3, previousAverageSentiment: null, sentimentChange: null, negativeShare: 1, topTopics: [{ topic: 'billing', volume: 3 }], openItems: 2, overdueItems: 2 });
    expect(finance.averageSentiment).toBeLessThan(-0.35);
    expect(finance.topNegativeTopics).toHaveLength(1);
    expect(finance.topNegativeTopics[0]!).toMatchObject({ topic: 'billing', negativeCount: 3 });
    expect(finance.topNegativeTopics[0]!.examples).toHaveLength(2);
    expect(by.get('Logistics')).toMatchObject({ volume: 3, openItems: 0, overdueItems: 0 });
    expect(by.get('Customer Care')).toMatchObject({ volume: 0, openItems: 1, overdueItems: 1 });
  });

  it('sentimentTrend: day buckets for a department, every day present', async () => {
    const r = await app.gql<{ sentimentTrend: { start: string; count: number; negativeCount: number }[] }>(
      `{ sentimentTrend(scope: DEPARTMENT, id: "Finance", bucket: DAY, from: "2026-11-02T00:00:00Z", to: "2026-11-06T00:00:00Z") { start count negativeCount } }`,
    );
    expect(r.errors).toBeUndefined();
    expect(r.data.sentimentTrend).toEqual([
      { start: '2026-11-02T00:00:00.000Z', count: 0, negativeCount: 0 },
      { start: '2026-11-03T00:00:00.000Z', count: 3, negativeCount: 3 },
      { start: '2026-11-04T00:00:00.000Z', count: 0, negativeCount: 0 },
      { start: '2026-11-05T00:00:00.000Z', count: 1, negativeCount: 1 },
    ]);
    const hours = await app.gql<{ sentimentTrend: { count: number }[] }>(
      `{ sentimentTrend(scope: ALL, bucket: HOUR, from: "2026-11-03T07:00:00Z", to: "2026-11-03T10:00:00Z") { count } }`,
    );
    // 08:00: the eight inbound messages of BASE (seven items and the praise)
    expect(hours.data.sentimentTrend.map((p) => p.count)).toEqual([0, 8, 0]);
    const topic = await app.gql<{ sentimentTrend: { count: number }[] }>(
      `{ sentimentTrend(scope: TOPIC, id: "billing", bucket: WEEK, from: "2026-11-02T00:00:00Z", to: "2026-11-09T00:00:00Z") { count } }`,
    );
    expect(topic.data.sentimentTrend.map((p) => p.count)).toEqual([4]);
  });

  it('openItems: most urgent first, cursor pages without repeats', async () => {
    const first = await app.gql<{ openItems: { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string }; edges: { node: { urgency: number; interaction: { externalId: string } } }[] } }>(
      `{ openItems(first: 2) { totalCount pageInfo { hasNextPage endCursor } edges { node { urgency interaction { externalId } } } } }`,
    );
    expect(first.errors).toBeUndefined();
    expect(first.data.openItems.totalCount).toBe(3);
    const page1 = first.data.openItems.edges.map((e) => e.node);
    // f3 and q1 were opened together, f4 two days later: the older, more negative f3 leads; f4 is last
    expect(page1.map((n) => n.interaction.externalId)).toEqual(['f3', 'q1']);
    expect(page1[0]!.urgency).toBeGreaterThan(page1[1]!.urgency);
    const next = await app.gql<{ openItems: { pageInfo: { hasNextPage: boolean }; edges: { node: { interaction: { externalId: string } } }[] } }>(
      `query($after: String) { openItems(first: 2, after: $after) { pageInfo { hasNextPage } edges { node { interaction { externalId } } } } }`,
      { after: first.data.openItems.pageInfo.endCursor },
    );
    expect(next.data.openItems.edges.map((e) => e.node.interaction.externalId)).toEqual(['f4']);
    expect(next.data.openItems.pageInfo.hasNextPage).toBe(false);
  });
});
