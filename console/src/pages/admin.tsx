import { useEffect, useState } from 'preact/hooks';
import { ApiError, gql } from '../api';
import { ErrorBox, pct, Section, useQuery, when } from '../components/ui';

interface Topic {
  name: string;
  label: string;
  department: string;
  phrases: string[];
}
interface Job {
  id: string;
  status: string;
  progress: number;
  done: number;
  total: number;
  changed: number;
  error: string | null;
}

const ADMIN = `query Admin {
  topics { name label department phrases }
  crmSyncStatus {
    systems running writeBackPending
    objects { system objectType status lastSuccessAt recordsLastRun totalRecords lastError }
    budgets { system usedToday dailyLimit exhaustedUntil }
  }
}`;
const JOB = `query Job($id: ID!) { retagJob(id: $id) { id status progress done total changed error } }`;

export function AdminPage() {
  const q = useQuery<{
    topics: Topic[];
    crmSyncStatus: {
      systems: string[];
      running: string[];
      writeBackPending: number;
      objects: { system: string; objectType: string; status: string; lastSuccessAt: string | null; recordsLastRun: number; totalRecords: number; lastError: string | null }[];
      budgets: { system: string; usedToday: number; dailyLimit: number; exhaustedUntil: string | null }[];
    };
  }>(ADMIN, {});
  const [editing, setEditing] = useState<Topic>({ name: '', label: '', department: '', phrases: [] });
  const [phrases, setPhrases] = useState('');
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<string | null>(null);

  // the re-tag job runs in the background: follow its progress until it ends
  useEffect(() => {
    if (!job || job.status === 'succeeded' || job.status === 'failed' || job.status === 'SUCCEEDED' || job.status === 'FAILED') return;
    const t = setTimeout(async () => {
      try {
        const d = await gql<{ retagJob: Job }>(JOB, { id: job.id });
        setJob(d.retagJob);
      } catch (e) {
        setError(e instanceof ApiError ? e.message : String(e));
      }
    }, 1_000);
    return () => clearTimeout(t);
  }, [job]);

  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const input = { ...editing, phrases: phrases.split('\n').map((p) => p.trim()).filter(Boolean) };
      const d = await gql<{ upsertTopic: { job: Job } }>(`mutation Save($input: TopicInput!) { upsertTopic(input: $input) { job { id status progress done total changed error } } }`, { input });
      setJob(d.upsertTopic.job);
      await q.reload();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const remove = async (name: string) => {
    if (!confirm(`Delete the topic ${name}? Stored interactions are re-tagged.`)) return;
    try {
      const d = await gql<{ deleteTopic: { job: Job } }>(`mutation Delete($name: String!) { deleteTopic(name: $name) { job { id status progress done total changed error } } }`, { name });
      setJob(d.deleteTopic.job);
      await q.reload();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const sync = q.data?.crmSyncStatus;
  return (
    <div>
      <h1>Admin</h1>
      <ErrorBox error={q.error ?? error} />
      {job && (
        <p role="status" class="card">
          Re-tagging: {job.status.toLowerCase()}, {job.done} of {job.total} ({pct(job.progress)}), {job.changed} changed
          <progress max={1} value={job.progress} aria-label="Re-tag progress" />
          {job.error && <span class="error"> {job.error}</span>}
        </p>
      )}
      <Section title="Taxonomy">
        <table class="table">
          <thead>
            <tr>
              <th scope="col">Topic</th>
              <th scope="col">Department</th>
              <th scope="col">Phrases</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(q.data?.topics ?? []).map((t) => (
              <tr>
                <th scope="row">
                  {t.label} <span class="muted">({t.name})</span>
                </th>
                <td>{t.department}</td>
                <td>{t.phrases.join(', ')}</td>
                <td>
                  <button
                    aria-label={`Edit ${t.label}`}
                    onClick={() => {
                      setEditing(t);
                      setPhrases(t.phrases.join('\n'));
                    }}
                  >
                    Edit
                  </button>{' '}
                  <button aria-label={`Delete ${t.label}`} onClick={() => void remove(t.name)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <form class="stack" onSubmit={save} aria-label="Create or edit a topic">
          <h3>Create or edit a topic</h3>
          <label>
            Name (a–z, 0–9, _)
            <input required pattern="[a-z0-9_]+" value={editing.name} onInput={(e) => setEditing({ ...editing, name: e.currentTarget.value })} />
          </label>
          <label>
            Label
            <input required value={editing.label} onInput={(e) => setEditing({ ...editing, label: e.currentTarget.value })} />
          </label>
          <label>
            Department
            <input required value={editing.department} onInput={(e) => setEditing({ ...editing, department: e.currentTarget.value })} />
          </label>
          <label>
            Phrases, one per line
            <textarea required rows={4} value={phrases} onInput={(e) => setPhrases(e.currentTarget.value)} />
          </label>
          <button type="submit">Save and re-tag</button>
        </form>
      </Section>
      <Section title="CRM sync">
        {sync && sync.systems.length === 0 && <p class="muted">No CRM is configured.</p>}
        {sync && sync.systems.length > 0 && (
          <>
            <p>
              Running: {sync.running.length ? sync.running.join(', ') : 'none'} · write-back pending: {sync.writeBackPending}
            </p>
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">Object</th>
                  <th scope="col">Status</th>
                  <th scope="col">Last success</th>
                  <th scope="col">Records (last run / all)</th>
                  <th scope="col">Last error</th>
                </tr>
              </thead>
              <tbody>
                {sync.objects.map((o) => (
                  <tr>
                    <th scope="row">
                      {o.system.toLowerCase()} {o.objectType}
                    </th>
                    <td>{o.status.toLowerCase()}</td>
                    <td>{when(o.lastSuccessAt)}</td>
                    <td>
                      {o.recordsLastRun} / {o.totalRecords}
                    </td>
                    <td>{o.lastError ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <ul class="plain">
              {sync.budgets.map((b) => (
                <li>
                  {b.system.toLowerCase()}: {b.usedToday} of {b.dailyLimit} API calls today{b.exhaustedUntil && `, exhausted until ${when(b.exhaustedUntil)}`}
                </li>
              ))}
            </ul>
          </>
        )}
      </Section>
    </div>
  );
}
