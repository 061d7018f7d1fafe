import { useState } from 'preact/hooks';
import { TrendChart } from '../components/chart';
import { duration, ErrorBox, excerpt, num, pct, Section, useQuery } from '../components/ui';

interface Gap {
  received: number;
  answered: number;
  ignored: number;
  ignoredShare: number;
  pending: number;
  medianFirstResponseSeconds: number | null;
}
interface DeptGap extends Gap {
  department: string;
}
interface ChanGap extends Gap {
  channel: string;
}
interface Insight {
  department: string;
  volume: number;
  averageSentiment: number | null;
  sentimentChange: number | null;
  negativeShare: number;
  openItems: number;
  overdueItems: number;
  topTopics: { topic: string; label: string; volume: number; averageSentiment: number | null }[];
  topNegativeTopics: { topic: string; label: string; negativeCount: number; examples: { id: string; text: string }[] }[];
}

const GAP_FIELDS = 'received answered ignored ignoredShare pending medianFirstResponseSeconds';
const OVERVIEW = `query Departments($from: DateTimeISO!, $to: DateTimeISO!) {
  listeningGap(from: $from, to: $to) {
    ${GAP_FIELDS}
    byDepartment { department ${GAP_FIELDS} }
    byChannel { channel ${GAP_FIELDS} }
  }
  departmentInsights(from: $from, to: $to) {
    department volume averageSentiment sentimentChange negativeShare openItems overdueItems
    topTopics { topic label volume averageSentiment }
    topNegativeTopics { topic label negativeCount examples { id text } }
  }
}`;

const TREND = `query Trend($id: ID, $scope: TrendScope!, $bucket: TrendBucket!, $from: DateTimeISO!, $to: DateTimeISO!) {
  sentimentTrend(scope: $scope, id: $id, bucket: $bucket, from: $from, to: $to) { start averageScore count negativeCount }
}`;

const PERIODS = [
  { days: 7, label: 'last 7 days', bucket: 'DAY' },
  { days: 30, label: 'last 30 days', bucket: 'DAY' },
  { days: 90, label: 'last 90 days', bucket: 'WEEK' },
  { days: 182, label: 'last 6 months', bucket: 'WEEK' },
] as const;

const DAY = 86_400_000;

function window(days: number): { from: string; to: string } {
  // whole days, so that reloading within a day asks the same question
  const end = Math.ceil(Date.now() / DAY) * DAY;
  return { from: new Date(end - days * DAY).toISOString(), to: new Date(end).toISOString() };
}

export function DepartmentsPage() {
  const [period, setPeriod] = useState<(typeof PERIODS)[number]>(PERIODS[1]);
  const [department, setDepartment] = useState('');
  const range = window(period.days);
  const q = useQuery<{ listeningGap: Gap & { byDepartment: DeptGap[]; byChannel: ChanGap[] }; departmentInsights: Insight[] }>(OVERVIEW, range);
  const t = useQuery<{ sentimentTrend: { start: string; averageScore: number | null; count: number; negativeCount: number }[] }>(TREND, {
    ...range,
    bucket: period.bucket,
    scope: department ? 'DEPARTMENT' : 'ALL',
    id: department || null,
  });
  const gap = q.data?.listeningGap;
  const insights = q.data?.departmentInsights ?? [];
  const chosen = insights.find((i) => i.department === department) ?? null;
  const trend = t.data?.sentimentTrend ?? [];
  return (
    <div>
      <h1>Departments</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Choose the period and department">
        <label>
          Period
          <select value={String(period.days)} onChange={(e) => setPeriod(PERIODS.find((p) => String(p.days) === e.currentTarget.value) ?? PERIODS[1])}>
            {PERIODS.map((p) => (
              <option value={String(p.days)}>{p.label}</option>
            ))}
          </select>
        </label>
        <label>
          Department
          <select value={department} onChange={(e) => setDepartment(e.currentTarget.value)}>
            <option value="">all departments</option>
            {insights.map((i) => (
              <option value={i.department}>{i.department}</option>
            ))}
          </select>
        </label>
      </form>
      <ErrorBox error={q.error ?? t.error} />
      {gap && (
        <dl class="kpis" data-testid="gap-kpis">
          <div>
            <dt>Received</dt>
            <dd>{gap.received}</dd>
          </div>
          <div>
            <dt>Answered</dt>
            <dd>{gap.answered}</dd>
          </div>
          <div>
            <dt>Ignored share</dt>
            <dd>{pct(gap.ignoredShare)}</dd>
          </div>
          <div>
            <dt>Median first response</dt>
            <dd>{duration(gap.medianFirstResponseSeconds)}</dd>
          </div>
        </dl>
      )}
      <div class="grid">
        <Section title={`Sentiment trend, ${department || 'all departments'}`} id="trend">
          <TrendChart
            title={`Average inbound sentiment per ${period.bucket === 'DAY' ? 'day' : 'week'} (bars: interactions)`}
            labels={trend.map((p) => p.start.slice(0, 10))}
            yMin={-1}
            yMax={1}
            series={[
              { label: 'average score', values: trend.map((p) => p.averageScore), color: '#1d4ed8' },
              { label: 'interactions', values: trend.map((p) => p.count), color: '#64748b', bar: true, secondary: true },
            ]}
          />
        </Section>
        <Section title="Ignored share by department" id="ignored">
          <TrendChart
            title="Share of items with no first response by the due time"
            labels={(gap?.byDepartment ?? []).map((d) => d.department)}
            yMin={0}
            series={[{ label: 'ignored share', values: (gap?.byDepartment ?? []).map((d) => d.ignoredShare), color: '#b91c1c', bar: true }]}
          />
        </Section>
      </div>
      <Section title="Listening gap by department" id="gap-departments">
        <GapTable rows={(gap?.byDepartment ?? []).map((d) => ({ name: d.department, ...d }))} insights={insights} />
      </Section>
      <Section title="Listening gap by channel" id="gap-channels">
        <GapTable rows={(gap?.byChannel ?? []).map((d) => ({ name: d.channel, ...d }))} />
      </Section>
      <Section title={chosen ? `Top topics in ${chosen.department}` : 'Top topics'} id="topics">
        {(chosen ? [chosen] : insights).map((i) => (
          <div class="topics">
            <h3>{i.department}</h3>
            <p class="muted">
              {i.volume} interactions, average {num(i.averageSentiment)}
              {i.sentimentChange != null && ` (${i.sentimentChange >= 0 ? '+' : ''}${i.sentimentChange.toFixed(2)} on the previous period)`}, {pct(i.negativeShare)} negative, {i.openItems} open,{' '}
              {i.overdueItems} overdue
            </p>
            <ul class="plain">
              {i.topNegativeTopics.map((tp) => (
                <li>
                  <strong>
                    <bdi>{tp.label}</bdi>
                  </strong>
                  : {tp.negativeCount} negative
                  {tp.examples[0] && (
                    <q>
                      <bdi>{excerpt(tp.examples[0].text, 120)}</bdi>
                    </q>
                  )}
                </li>
              ))}
            </ul>
          </div>
        ))}
      </Section>
    </div>
  );
}

function GapTable({ rows, insights }: { rows: (Gap & { name: string })[]; insights?: Insight[] }) {
  return (
    <table class="table" data-testid="gap-table">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Received</th>
          <th scope="col">Answered</th>
          <th scope="col">Pending</th>
          <th scope="col">Ignored share</th>
          <th scope="col">Median first response</th>
          {insights && <th scope="col">SLA breaches (overdue now)</th>}
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr>
            <th scope="row">{r.name}</th>
            <td>{r.received}</td>
            <td>{r.answered}</td>
            <td>{r.pending}</td>
            <td>{pct(r.ignoredShare)}</td>
            <td>{duration(r.medianFirstResponseSeconds)}</td>
            {insights && <td>{insights.find((i) => i.department === r.name)?.overdueItems ?? 0}</td>}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
