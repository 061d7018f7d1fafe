import { randomUUID } from 'node:crypto';
import { traceHeaders } from '../shared/tracing';
import type { DataSource, QueryRunner } from 'typeorm';
import { customerDisplayName } from '../auth/pii.policy';
import type { Config } from '../config/config';
import { inTransaction } from '../db/transaction';
import { authorIdentities, type IdentityClaim } from '../identity/author-identities';
import { autoMergeTx, identityLockKey, lockCustomers, lockIdentityKeys } from '../identity/merge';
import { enrichedEvent, sentimentEvent, type CustomerSummaryRow } from '../outbox/outbox-events';
import { OUTBOX_NOTIFY_CHANNEL } from '../outbox/outbox-relay';
import type { Logger } from '../shared/logger';
import { NEGATIVE_THRESHOLD, POSITIVE_THRESHOLD, type Analysis } from '../sentiment/analyzer';
import type { TaxonomyService } from '../sentiment/taxonomy.service';
import { SentimentScorer } from '../sentiment/sentiment.scorer';
import { recipientOf, type ListeningGapTracker, type TrackedMessage } from '../listening-gap/listening-gap.tracker';
import type { InteractionMessage } from './interaction-message';

export type RecordStatus = 'accepted' | 'duplicate';

export interface RecordOutcome {
  accepted: number;
  duplicates: number;
  /** per input message, in input order */
  statuses: RecordStatus[];
  /** ids of the accepted interactions */
  interactionIds: string[];
}

interface Prepared {
  index: number;
  id: string;
  message: InteractionMessage;
  analysis: Analysis;
  claims: IdentityClaim[];
  customerId: string | null;
}

/**
 * The one write path of every ingest channel (HTTP, GraphQL, Kafka): dedupe, analyze,
 * attach to a customer, persist the interaction, its topics, the rollups and the outbox
 * rows in one transaction.
 *
 * Must stay true: a message whose (source, externalId) is already stored changes nothing;
 * two concurrent batches never create two customers for one identity; everything that
 * leaves the service is written to the outbox in the same transaction.
 */
export class RecordInteractionsService {
  constructor(
    private readonly ds: DataSource,
    private readonly taxonomy: TaxonomyService,
    private readonly config: Pick<Config, 'identity' | 'publicUrl'>,
    private readonly log: Logger,
    /** opens, reopens and answers listening-gap items in the same transaction; off when absent */
    private readonly gap: ListeningGapTracker | null = null,
    /** built-in model, or the team's model server with the built-in as fallback */
    private readonly scorer: SentimentScorer = new SentimentScorer(taxonomy, null, log),
  ) {}

  async record(messages: InteractionMessage[]): Promise<RecordOutcome> {
    const statuses: RecordStatus[] = new Array(messages.length).fill('duplicate');
    const loaded = await this.taxonomy.current();
    const { topicIds, departmentIds } = loaded;
    const identityOpts = {
      email: { plusAddressing: this.config.identity.plusAddressing },
      defaultRegion: this.config.identity.defaultPhoneRegion,
    };

    const seen = new Set<string>();
    const firsts: { message: InteractionMessage; index: number }[] = [];
    messages.forEach((message, index) => {
      const key = `${message.source}\u0000${message.externalId}`;
      if (seen.has(key)) return;
      seen.add(key);
      firsts.push({ message, index });
    });
    if (firsts.length === 0) return { accepted: 0, duplicates: messages.length, statuses, interactionIds: [] };
    // One call per batch, before the transaction: a model server may take its time, a lock must not.
    const analyses = await this.scorer.analyzeBatch(
      firsts.map(({ message: m }) => ({
        text: m.text,
        lang: m.lang,
        rating: m.rating,
        ratingScale: typeof m.metadata?.ratingScale === 'number' ? m.metadata.ratingScale : undefined,
      })),
      loaded,
    );
    const unique: Prepared[] = firsts.map(({ message, index }, i) => ({
      index,
      id: randomUUID(),
      message,
      analysis: analyses[i]!,
      claims: authorIdentities(message, identityOpts),
      customerId: null,
    }));

    const accepted = await inTransaction(this.ds, (qr) => this.persist(qr, unique, topicIds, departmentIds));
    for (const p of accepted) statuses[p.index] = 'accepted';
    return {
      accepted: accepted.length,
      duplicates: messages.length - accepted.length,
      statuses,
      interactionIds: accepted.map((p) => p.id),
    };
  }

  private async persist(
    qr: QueryRunner,
    batch: Prepared[],
    topicIds: Map<string, number>,
    departmentIds: Map<string, number>,
  ): Promise<Prepared[]> {
    const existing: { source: string; external_id: string }[] = await qr.query(
      `SELECT i.source, i.external_id FROM interaction i
         JOIN unnest($1::text[], $2::text[]) AS k(source, external_id)
           ON i.source = k.source AND i.external_id = k.external_id`,
      [batch.map((p) => p.message.source), batch.map((p) => p.message.externalId)],
    );
    const stored = new Set(existing.map((r) => `${r.source}\u0000${r.external_id}`));
    const fresh = batch.filter((p) => !stored.has(`${p.message.source}\u0000${p.message.externalId}`));
    if (fresh.length === 0) return [];

    await this.resolveCustomers(qr, fresh.filter((p) => p.message.direction === 'inbound'));
    await this.attachReplies(qr, fresh);
    let gapPlan = this.gap ? await this.gap.plan(qr, fresh.map(tracked)) : null;

    const inserted: { id: string }[] = await qr.query(
      `INSERT INTO interaction (id, event_id, source, external_id, url, text, occurred_at, direction, in_reply_to,
          author_handle, author_display_name, lang, rating, metadata, sentiment_score, sentiment_label,
          sentiment_confidence, intent, intent_confidence, explanation, customer_id, thread_key, sentiment_model)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
          $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::float8[], $14::jsonb[], $15::float8[],
          $16::text[], $17::float8[], $18::text[], $19::float8[], $20::jsonb[], $21::uuid[], $22::text[], $23::text[])
       ON CONFLICT (source, external_id) DO NOTHING
       RETURNING id`,
      [
        fresh.map((p) => p.id),
        fresh.map((p) => p.message.eventId ?? null),
        fresh.map((p) => p.message.source),
        fresh.map((p) => p.message.externalId),
        fresh.map((p) => p.message.url ?? null),
        fresh.map((p) => p.message.text),
        fresh.map((p) => new Date(p.message.occurredAt).toISOString()),
        fresh.map((p) => p.message.direction),
        fresh.map((p) => p.message.inReplyTo ?? null),
        fresh.map((p) => p.message.author.handle ?? null),
        fresh.map((p) => p.message.author.displayName ?? null),
        fresh.map((p) => p.analysis.lang),
        fresh.map((p) => p.message.rating ?? null),
        fresh.map((p) => (p.message.metadata ? JSON.stringify(p.message.metadata) : null)),
        fresh.map((p) => p.analysis.score),
        fresh.map((p) => p.analysis.label),
        fresh.map((p) => p.analysis.confidence),
        fresh.map((p) => p.analysis.intent),
        fresh.map((p) => p.analysis.intentConfidence),
        fresh.map((p) => JSON.stringify(p.analysis.explanation)),
        fresh.map((p) => p.customerId),
        fresh.map((p) => gapPlan?.threadKeys.get(p.id) ?? null),
        fresh.map((p) => p.analysis.model),
      ],
    );
    const insertedIds = new Set(inserted.map((r) => r.id));
    const accepted = fresh.filter((p) => insertedIds.has(p.id));
    if (accepted.length === 0) return [];

    const topicRows = accepted.flatMap((p) =>
      p.analysis.topics.filter((t) => topicIds.has(t.name)).map((t) => [p.id, topicIds.get(t.name)!, t.matched] as const),
    );
    if (topicRows.length > 0) {
      await qr.query(
        `INSERT INTO interaction_topic (interaction_id, topic_id, matched)
         SELECT i, t, ARRAY(SELECT jsonb_array_elements_text(m)) FROM unnest($1::uuid[], $2::int[], $3::jsonb[]) AS x(i, t, m)
         ON CONFLICT DO NOTHING`,
        [topicRows.map((r) => r[0]), topicRows.map((r) => r[1]), topicRows.map((r) => JSON.stringify(r[2]))],
      );
    }

    if (this.gap && gapPlan) {
      // A concurrent writer took some of these (source, externalId): plan again without them.
      if (accepted.length < fresh.length) gapPlan = await this.gap.plan(qr, accepted.map(tracked));
      await this.gap.write(qr, gapPlan, insertedIds);
    }
    const summaries = await this.updateRollups(qr, accepted, departmentIds);
    await this.writeOutbox(qr, accepted, summaries);
    return accepted;
  }

  /**
   * Attaches each message to a customer by its deterministic identities, creating the
   * customer and identities the first time an author is seen. A message naming identities of
   * two customers (a handle known alone, now with an email a CRM contact has) proves them one
   * person: they are merged here, in this transaction, with an audit entry; unless a person
   * rejected the pair or both hold records of one CRM object (then a suggestion).
   * Also records which identity attached each message, so an unmerge or unlink moves it back.
   */
  private async resolveCustomers(qr: QueryRunner, batch: Prepared[]): Promise<void> {
    const keyOf = (c: IdentityClaim) => identityLockKey(c.kind, c.value);
    const claims = new Map<string, IdentityClaim>();
    for (const p of batch) for (const c of p.claims) claims.set(keyOf(c), c);
    if (claims.size === 0) return;
    await lockIdentityKeys(qr, claims.keys());

    const owners = new Map<string, string>();
    const identityIds = new Map<string, string>();
    const all = [...claims.values()];
    const rows: { id: string; kind: string; value: string; customer_id: string }[] = await qr.query(
      `SELECT ci.id, ci.kind, ci.value, ci.customer_id
         FROM customer_identity ci
         JOIN unnest($1::text[], $2::text[]) AS k(kind, value) ON ci.kind = k.kind AND ci.value = k.value`,
      [all.map((c) => c.kind), all.map((c) => c.value)],
    );
    // Locking the owners makes a concurrent merge of one of them finish first (we then see its survivor).
    const roots = rows.length > 0 ? await lockCustomers(qr, rows.map((r) => r.customer_id)) : new Map<string, string>();
    for (const r of rows) {
      owners.set(identityLockKey(r.kind, r.value), roots.get(r.customer_id) ?? r.customer_id);
      identityIds.set(identityLockKey(r.kind, r.value), r.id);
    }

    for (const p of batch) {
      const known = p.claims.filter((c) => owners.has(keyOf(c)));
      for (const other of known.slice(1)) {
        const survivor = owners.get(keyOf(known[0]!))!;
        const mergedId = owners.get(keyOf(other))!;
        if (survivor === mergedId) continue;
        const m = p.message;
        const outcome = await autoMergeTx(
          qr,
          { customerId: survivor, identityId: identityIds.get(keyOf(known[0]!))! },
          { customerId: mergedId, identityId: identityIds.get(keyOf(other))! },
          {
            reason: `interaction ${m.source}/${m.externalId} names the ${known[0]!.kind} of one customer and the ${other.kind} of the other`,
            actor: `rule:deterministic:${known[0]!.kind}`,
            evidence: [
              { field: known[0]!.kind, outcome: 'agree', detail: 'held by the survivor; named by the same author' },
              { field: other.kind, outcome: 'agree', detail: 'held by the merged customer; named by the same author' },
            ],
            publicUrl: this.config.publicUrl,
          },
        );
        if (outcome.merged) for (const [k, owner] of owners) if (owner === mergedId) owners.set(k, survivor);
      }
    }

    const newCustomers: { id: string; displayName: string | null }[] = [];
    const newIdentities: { id: string; customerId: string; claim: IdentityClaim }[] = [];
    const attachedBy: { interactionId: string; identityId: string }[] = [];
    for (const p of batch) {
      const keys = p.claims.map(keyOf);
      // claims are sorted strongest first, so the strongest known identity decides
      let customerId = keys.map((k) => owners.get(k)).find((id) => id !== undefined) ?? null;
      if (customerId === null && p.claims.length > 0) {
        customerId = randomUUID();
        newCustomers.push({ id: customerId, displayName: customerDisplayName(p.message.source, p.message.author) });
      }
      p.customerId = customerId;
      if (customerId === null) continue;
      p.claims.forEach((claim, i) => {
        if (!owners.has(keys[i]!)) {
          const id = randomUUID();
          owners.set(keys[i]!, customerId);
          identityIds.set(keys[i]!, id);
          newIdentities.push({ id, customerId, claim });
        }
      });
      const by = keys.find((k) => owners.get(k) === customerId);
      if (by) attachedBy.push({ interactionId: p.id, identityId: identityIds.get(by)! });
    }

    if (newCustomers.length > 0) {
      await qr.query(`INSERT INTO customer (id, display_name) SELECT * FROM unnest($1::uuid[], $2::text[])`, [
        newCustomers.map((c) => c.id),
        newCustomers.map((c) => c.displayName),
      ]);
    }
    if (newIdentities.length > 0) {
      // No ON CONFLICT: the advisory locks above make a concurrent insert of the same key impossible.
      await qr.query(
        `INSERT INTO customer_identity (id, customer_id, kind, network, value, raw_value, source)
         SELECT i, c, k, n, v, r, 'ingest' FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[]) AS x(i, c, k, n, v, r)`,
        [
          newIdentities.map((i) => i.id),
          newIdentities.map((i) => i.customerId),
          newIdentities.map((i) => i.claim.kind),
          newIdentities.map((i) => i.claim.network),
          newIdentities.map((i) => i.claim.value),
          newIdentities.map((i) => i.claim.raw),
        ],
      );
    }
    if (attachedBy.length > 0) {
      await qr.query(
        `INSERT INTO interaction_identity (interaction_id, identity_id)
         SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT (interaction_id) DO NOTHING`,
        [attachedBy.map((a) => a.interactionId), attachedBy.map((a) => a.identityId)],
      );
    }
  }

  /**
   * A company's reply belongs to the customer it answers, never to the brand account
   * that wrote it: look the answered interaction up in this batch, then in the database.
   */
  private async attachReplies(qr: QueryRunner, batch: Prepared[]): Promise<void> {
    const replies = batch.filter((p) => p.message.direction === 'outbound' && p.message.inReplyTo);
    if (replies.length === 0) return;
    const inBatch = new Map(batch.map((p) => [`${p.message.source}\u0000${p.message.externalId}`, p]));
    const missing: Prepared[] = [];
    for (const r of replies) {
      const target = inBatch.get(`${r.message.source}\u0000${r.message.inReplyTo}`);
      if (target?.customerId) r.customerId = target.customerId;
      else missing.push(r);
    }
    if (missing.length === 0) return;
    const rows: { source: string; external_id: string; customer_id: string }[] = await qr.query(
      `SELECT i.source, i.external_id, i.customer_id FROM interaction i
         JOIN unnest($1::text[], $2::text[]) AS k(source, external_id) ON i.source = k.source AND i.external_id = k.external_id
        WHERE i.customer_id IS NOT NULL`,
      [missing.map((r) => r.message.source), missing.map((r) => r.message.inReplyTo)],
    );
    const owners = new Map(rows.map((r) => [`${r.source}\u0000${r.external_id}`, r.customer_id]));
    for (const r of missing) r.customerId = owners.get(`${r.message.source}\u0000${r.message.inReplyTo}`) ?? null;
  }

  private async updateRollups(
    qr: QueryRunner,
    accepted: Prepared[],
    departmentIds: Map<string, number>,
  ): Promise<CustomerSummaryRow[]> {
    type Agg = { n: number; sum: number; neg: number; pos: number };
    const add = (m: Map<string, Agg>, key: string, a: Analysis) => {
      const agg = m.get(key) ?? { n: 0, sum: 0, neg: 0, pos: 0 };
      agg.n++;
      agg.sum += a.score;
      if (a.label === 'negative') agg.neg++;
      if (a.label === 'positive') agg.pos++;
      m.set(key, agg);
    };
    const byCustomerDay = new Map<string, Agg>();
    const byDepartmentDay = new Map<string, Agg>();
    const lastSeen = new Map<string, number>();
    for (const p of accepted) {
      const day = new Date(p.message.occurredAt).toISOString().slice(0, 10);
      if (p.customerId) {
        const t = Date.parse(p.message.occurredAt);
        lastSeen.set(p.customerId, Math.max(lastSeen.get(p.customerId) ?? 0, t));
      }
      if (p.message.direction !== 'inbound') continue;
      if (p.customerId) add(byCustomerDay, `${p.customerId}|${day}`, p.analysis);
      const departments = new Set(p.analysis.topics.map((t) => departmentIds.get(t.department)).filter((d) => d !== undefined));
      for (const d of departments) add(byDepartmentDay, `${d}|${day}`, p.analysis);
    }
    const upsert = async (table: string, keyColumn: string, keyType: string, m: Map<string, Agg>) => {
      if (m.size === 0) return;
      const entries = [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
      await qr.query(
        `INSERT INTO ${table} (${keyColumn}, day, interaction_count, score_sum, negative_count, positive_count)
         SELECT * FROM unnest($1::${keyType}[], $2::date[], $3::int[], $4::float8[], $5::int[], $6::int[])
         ON CONFLICT (${keyColumn}, day) DO UPDATE SET
           interaction_count = ${table}.interaction_count + EXCLUDED.interaction_count,
           score_sum = ${table}.score_sum + EXCLUDED.score_sum,
           negative_count = ${table}.negative_count + EXCLUDED.negative_count,
           positive_count = ${table}.positive_count + EXCLUDED.positive_count`,
        [
          entries.map(([k]) => k.split('|')[0]),
          entries.map(([k]) => k.split('|')[1]),
          entries.map(([, a]) => a.n),
          entries.map(([, a]) => a.sum),
          entries.map(([, a]) => a.neg),
          entries.map(([, a]) => a.pos),
        ],
      );
    };
    await upsert('customer_sentiment_daily', 'customer_id', 'uuid', byCustomerDay);
    await upsert('department_sentiment_daily', 'department_id', 'int', byDepartmentDay);
    if (lastSeen.size === 0) return [];
    return refreshCustomerSummaries(qr, [...lastSeen.keys()], [...lastSeen.values()].map((t) => new Date(t).toISOString()));
  }

  private async writeOutbox(qr: QueryRunner, accepted: Prepared[], summaries: CustomerSummaryRow[]): Promise<void> {
    const rows = [
      ...accepted.map((p) => enrichedEvent(p.id, p.message, p.analysis, p.customerId)),
      ...summaries.map((s) => sentimentEvent(s, this.config.publicUrl)),
    ];
    await insertOutbox(qr, rows);
  }
}

export async function insertOutbox(
  qr: Pick<QueryRunner, 'query'>,
  rows: { topic: string; key: string | null; payload: unknown; headers: Record<string, string> }[],
): Promise<void> {
  if (rows.length === 0) return;
  const trace = traceHeaders();
  // The NOTIFY is delivered at commit (never for a rollback) and wakes the outbox relay at once.
  // One jsonb parameter: each payload is serialized once, not stringified and then array-escaped again.
  await qr.query(
    `WITH ins AS (
       INSERT INTO outbox (topic, message_key, payload, headers)
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(topic text, message_key text, payload jsonb, headers jsonb)
       RETURNING 1)
     SELECT pg_notify('${OUTBOX_NOTIFY_CHANNEL}', '') FROM (SELECT count(*) AS n FROM ins) c WHERE c.n > 0`,
    // the W3C trace context of the transaction rides with the row, so the relay continues the trace
    [JSON.stringify(rows.map((r) => ({ topic: r.topic, message_key: r.key, payload: r.payload, headers: { ...r.headers, ...trace } })))],
  );
}

/**
 * Recomputes the stored sentiment summary of customers from their daily rollups:
 * a time-decayed mean (half-life 30 days), the 30-day trend (mean of the last 30 days
 * minus the 30 before) and the count of scored inbound interactions.
 */
export async function refreshCustomerSummaries(
  qr: Pick<QueryRunner, 'query'>,
  customerIds: string[],
  lastSeen?: string[],
): Promise<CustomerSummaryRow[]> {
  const order = customerIds.map((id, i) => [id, lastSeen?.[i] ?? null] as const).sort(([a], [b]) => (a < b ? -1 : 1));
  // TypeORM answers an UPDATE … RETURNING with [rows, affected]
  const [rows] = (await qr.query(
    `WITH ids AS (SELECT * FROM unnest($1::uuid[], $2::timestamptz[]) AS x(id, seen)),
     d AS (
       SELECT s.*, -- float8, not numeric: numeric power() cost 15 µs a row
              power(0.5::float8, greatest(0, current_date - s.day)::float8 / 30.0) AS w
         FROM customer_sentiment_daily s JOIN ids ON ids.id = s.customer_id),
     agg AS (
       SELECT customer_id,
              sum(score_sum * w) / nullif(sum(interaction_count * w), 0) AS score,
              sum(interaction_count)::int AS n,
              sum(score_sum) FILTER (WHERE day > current_date - 30)
                / nullif(sum(interaction_count) FILTER (WHERE day > current_date - 30), 0) AS recent,
              sum(score_sum) FILTER (WHERE day <= current_date - 30 AND day > current_date - 60)
                / nullif(sum(interaction_count) FILTER (WHERE day <= current_date - 30 AND day > current_date - 60), 0) AS prior
         FROM d GROUP BY customer_id)
     UPDATE customer c SET
       sentiment_score = agg.score,
       sentiment_label = CASE WHEN agg.score IS NULL THEN NULL WHEN agg.score >= ${POSITIVE_THRESHOLD} THEN 'positive'
                              WHEN agg.score <= ${NEGATIVE_THRESHOLD} THEN 'negative' ELSE 'neutral' END,
       sentiment_trend = agg.recent - agg.prior,
       interaction_count = coalesce(agg.n, 0),
       last_interaction_at = greatest(c.last_interaction_at, ids.seen),
       updated_at = now()
     FROM ids LEFT JOIN agg ON agg.customer_id = ids.id
     WHERE c.id = ids.id
     RETURNING c.id, c.display_name, c.sentiment_score, c.sentiment_label, c.sentiment_trend,
               c.interaction_count, c.last_interaction_at, c.updated_at`,
    [order.map(([id]) => id), order.map(([, s]) => s)],
  )) as [CustomerSummaryRow[], number];
  return rows;
}

function tracked(p: Prepared): TrackedMessage {
  const m = p.message;
  return {
    id: p.id,
    source: m.source,
    externalId: m.externalId,
    inReplyTo: m.inReplyTo ?? null,
    direction: m.direction,
    occurredAt: Date.parse(m.occurredAt),
    authorKey: (m.author.handle ?? m.author.email ?? null)?.toLowerCase() ?? null,
    recipientKey: m.direction === 'outbound' ? recipientOf(m.metadata, m.text) : null,
    intent: p.analysis.intent,
    score: p.analysis.score,
    unhappy: p.analysis.unhappy,
    customerId: p.customerId,
    departments: p.analysis.topics.map((t) => t.department),
  };
}

