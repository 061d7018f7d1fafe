import { addBusinessSeconds, parseBusinessHours, type BusinessHours } from './business-hours';

export type EscalationSystem = 'salesforce' | 'hubspot' | 'none';

export interface EscalationTarget {
  readonly system: EscalationSystem;
  /** Salesforce user/queue id or HubSpot owner id used when the customer's CRM record has no owner */
  readonly ownerId: string | null;
}

export interface ListeningGapConfig {
  /** inbound intents that open an item */
  readonly intents: readonly string[];
  /** an inbound interaction scored at or below this opens an item whatever its intent */
  readonly negativeThreshold: number;
  /** `department/channel` → seconds; `*` matches any (most specific wins) */
  readonly slaSeconds: ReadonlyMap<string, number>;
  /** null: the SLA clock runs around the clock */
  readonly businessHours: BusinessHours | null;
  /** how far back an unthreaded message (or a reply naming its recipient) finds the author's item */
  readonly replyWindowSeconds: number;
  /** department of items whose interaction has no topic */
  readonly defaultDepartment: string;
  readonly escalation: boolean;
  /** department → where its overdue items are escalated; key `*` is the fallback */
  readonly escalationTargets: ReadonlyMap<string, EscalationTarget>;
  readonly escalationIntervalMs: number;
  /**
   * An item whose due time passed longer ago than this (at the job's clock) is not escalated: a
   * backfill of old complaints would otherwise make a case for each. 0: no horizon.
   */
  readonly escalationHorizonSeconds: number;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
/**
 * The longest SLA: a year. `sla_seconds` is a 32-bit integer and the due time must be a date;
 * before, an SLA of `30000d` passed and every complaint on its channel was then refused at ingest
 * ("value 2592000000 is out of range for type integer"), and 400 digits gave an invalid date.
 */
export const MAX_SLA_SECONDS = 365 * 86400;

function duration(raw: string): number | null {
  const m = /^(\d+(?:\.\d+)?)([smhd])$/.exec(raw.trim());
  return m ? Math.round(Number(m[1]) * UNITS[m[2]!]!) : null;
}

/** SLA per department and channel, resolved most specific first. */
export function slaFor(config: Pick<ListeningGapConfig, 'slaSeconds'>, department: string, channel: string): number {
  const m = config.slaSeconds;
  return m.get(`${department}/${channel}`) ?? m.get(`${department}/*`) ?? m.get(`*/${channel}`) ?? m.get('*/*') ?? 4 * 3600;
}

export function escalationTargetFor(config: Pick<ListeningGapConfig, 'escalationTargets'>, department: string): EscalationTarget {
  return config.escalationTargets.get(department) ?? config.escalationTargets.get('*') ?? { system: 'none', ownerId: null };
}

export const DEFAULT_SLA = '*/*=4h,*/email=24h,*/ticket=24h,*/survey=72h,*/chat=1h,*/call=1h';

/**
 * The `listeningGap` section of the config (EARSHOT_GAP_*). Every problem is reported, none thrown.
 */
export function parseListeningGapConfig(
  str: (n: string) => string | null,
  int: (n: string, d: number, min: number, max: number) => number,
  problems: string[],
): ListeningGapConfig {
  const intentsRaw = str('EARSHOT_GAP_INTENTS');
  const intents = [...new Set((intentsRaw ?? 'complaint,question,churn_threat').split(',').map((s) => s.trim()).filter(Boolean))];
  // "," opened no item by intent at all, without a word
  if (intentsRaw !== null && intents.length === 0) problems.push(`EARSHOT_GAP_INTENTS=${JSON.stringify(intentsRaw)}: expected a comma-separated list, got no entry`);
  const known = ['complaint', 'question', 'praise', 'purchase_intent', 'churn_threat', 'other'];
  for (const i of intents) if (!known.includes(i)) problems.push(`EARSHOT_GAP_INTENTS: ${JSON.stringify(i)} is not one of ${known.join(', ')}`);

  let negativeThreshold = -0.5;
  const thr = str('EARSHOT_GAP_NEGATIVE_THRESHOLD');
  if (thr !== null) {
    // a decimal number only: Number() read "0x0" as 0 and "" as 0
    const n = /^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(thr) ? Number(thr) : NaN;
    if (!Number.isFinite(n) || n < -1 || n > 1) problems.push(`EARSHOT_GAP_NEGATIVE_THRESHOLD=${JSON.stringify(thr)}: expected a decimal score from -1 to 1`);
    else negativeThreshold = n;
  }

  const slaSeconds = new Map<string, number>();
  const slaRaw = str('EARSHOT_GAP_SLA');
  // Operators' entries are added on top of the defaults, so setting one department keeps the rest.
  for (const raw of [DEFAULT_SLA, ...(slaRaw === null ? [] : [slaRaw])]) {
    const given = new Map<string, number>();
    for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
      const m = /^([^=/]+)\/([^=/]+)=(.+)$/.exec(entry);
      const secs = m ? duration(m[3]!) : null;
      if (!m || secs === null || secs <= 0) {
        problems.push(`EARSHOT_GAP_SLA: ${JSON.stringify(entry)} is not department/channel=duration (e.g. Finance/x=2h, */email=24h)`);
        continue;
      }
      if (secs > MAX_SLA_SECONDS) {
        problems.push(`EARSHOT_GAP_SLA: ${JSON.stringify(entry)} is longer than 365d`);
        continue;
      }
      const key = `${m[1]!.trim()}/${m[2]!.trim()}`;
      // the same department/channel twice with two durations: the last one won in silence
      if (given.has(key) && given.get(key) !== secs) problems.push(`EARSHOT_GAP_SLA: ${key} is given twice, with two durations; give it once`);
      given.set(key, secs);
      slaSeconds.set(key, secs);
    }
  }

  let businessHours: BusinessHours | null = null;
  const bh = str('EARSHOT_GAP_BUSINESS_HOURS');
  if (bh !== null) {
    try {
      businessHours = parseBusinessHours(bh);
    } catch (e) {
      problems.push(`EARSHOT_GAP_BUSINESS_HOURS: ${(e as Error).message}`);
    }
  }

  if (businessHours) {
    // Every due time must be reachable within the business hours' bound (ten years of days), or
    // each complaint would be refused at ingest: checked once here instead.
    const longest = Math.max(...slaSeconds.values());
    try {
      addBusinessSeconds(new Date(), longest, businessHours);
    } catch {
      problems.push(`EARSHOT_GAP_SLA: an SLA of ${longest} s of business time does not end within ten years of EARSHOT_GAP_BUSINESS_HOURS`);
    }
  }

  const escRaw = str('EARSHOT_GAP_ESCALATION');
  if (escRaw !== null && !['on', 'off', 'true', 'false'].includes(escRaw)) problems.push('EARSHOT_GAP_ESCALATION: expected on or off');
  const escalationTargets = new Map<string, EscalationTarget>();
  const targetsRaw = str('EARSHOT_GAP_ESCALATION_TARGETS');
  const targetEntries = (targetsRaw ?? '*=salesforce').split(',').map((s) => s.trim()).filter(Boolean);
  // "," escalated nothing anywhere (every department fell to none), without a word
  if (targetsRaw !== null && targetEntries.length === 0) problems.push(`EARSHOT_GAP_ESCALATION_TARGETS=${JSON.stringify(targetsRaw)}: expected a comma-separated list, got no entry`);
  for (const entry of targetEntries) {
    const m = /^([^=]+)=(salesforce|hubspot|none)(?::([A-Za-z0-9_-]+))?$/.exec(entry);
    if (!m) {
      problems.push(`EARSHOT_GAP_ESCALATION_TARGETS: ${JSON.stringify(entry)} is not department=salesforce|hubspot|none[:ownerId]`);
      continue;
    }
    const department = m[1]!.trim();
    const target = { system: m[2] as EscalationSystem, ownerId: m[3] ?? null };
    const before = escalationTargets.get(department);
    // the last one won in silence
    if (before && (before.system !== target.system || before.ownerId !== target.ownerId)) problems.push(`EARSHOT_GAP_ESCALATION_TARGETS: ${department} is given twice, with two targets; give it once`);
    escalationTargets.set(department, target);
  }

  const escalationIntervalMs = int('EARSHOT_GAP_ESCALATION_INTERVAL_MS', 60_000, 100, 86_400_000);
  const horizonHours = int('EARSHOT_GAP_ESCALATION_HORIZON_HOURS', 72, 0, 24 * 3660);
  // An item must be overdue for at least two runs before it passes the horizon, or most would pass it unescalated.
  if (horizonHours > 0 && horizonHours * 3_600_000 < 2 * escalationIntervalMs) {
    problems.push(`EARSHOT_GAP_ESCALATION_HORIZON_HOURS=${horizonHours} is shorter than two runs of EARSHOT_GAP_ESCALATION_INTERVAL_MS (${escalationIntervalMs} ms)`);
  }

  return {
    intents,
    negativeThreshold,
    slaSeconds,
    businessHours,
    replyWindowSeconds: int('EARSHOT_GAP_REPLY_WINDOW_HOURS', 72, 1, 24 * 365) * 3600,
    defaultDepartment: str('EARSHOT_GAP_DEFAULT_DEPARTMENT') ?? 'Customer Care',
    escalation: escRaw === null || escRaw === 'on' || escRaw === 'true',
    escalationTargets,
    escalationIntervalMs,
    escalationHorizonSeconds: horizonHours * 3600,
  };
}
