import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, gql, loadCredentials, saveCredentials, VIEWER, type Credentials, type Viewer } from './api';
import { AdminPage } from './pages/admin';
import { CustomerPage, CustomersPage } from './pages/customers';
import { DepartmentsPage } from './pages/departments';
import { prefetchQueue, QueuePage } from './pages/queue';
import './styles.css';

type Route = { page: 'queue' | 'customers' | 'customer' | 'departments' | 'admin'; id?: string };

/** Hash routes (#/queue, #/customers/ID, …): deep links and reloads work without server rules. */
function parseRoute(hash: string): Route {
  const [, page = 'queue', id] = hash.replace(/^#/, '').split('/');
  if (page === 'customers' && id) {
    // a link someone crafted (#/customers/%E0) must not throw here: that would leave a blank page
    try {
      return { page: 'customer', id: decodeURIComponent(id) };
    } catch {
      return { page: 'customer', id };
    }
  }
  if (page === 'customers' || page === 'departments' || page === 'admin' || page === 'queue') return { page };
  return { page: 'queue' };
}

function useRoute(): Route {
  const [route, setRoute] = useState(parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function Login({ onLogin, error }: { onLogin: (c: Credentials) => void; error: string | null }) {
  const [kind, setKind] = useState<Credentials['kind']>('key');
  const [value, setValue] = useState('');
  return (
    <main class="login">
      <h1>Earshot console</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          onLogin({ kind, value: value.trim() });
        }}
      >
        <fieldset>
          <legend>Sign in with</legend>
          <label>
            <input type="radio" name="kind" checked={kind === 'key'} onChange={() => setKind('key')} /> an API key
          </label>
          <label>
            <input type="radio" name="kind" checked={kind === 'bearer'} onChange={() => setKind('bearer')} /> a bearer token
          </label>
        </fieldset>
        <label for="credential">{kind === 'key' ? 'API key' : 'Bearer token'}</label>
        <input id="credential" name="credential" type="password" autocomplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        <p class="hint">Kept for this browser tab only. Leave empty on a development instance without authentication.</p>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

const NAV: { page: Route['page']; label: string; admin?: boolean }[] = [
  { page: 'queue', label: 'Queue' },
  { page: 'customers', label: 'Customers' },
  { page: 'departments', label: 'Departments' },
  { page: 'admin', label: 'Admin', admin: true },
];

function App() {
  const route = useRoute();
  const [viewer, setViewer] = useState<Viewer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [checking, setChecking] = useState(loadCredentials() !== null);
  // Earshot did not answer (restarting, network): the credential is kept, not thrown away
  const [unreachable, setUnreachable] = useState(false);

  const check = async () => {
    try {
      const d = await gql<{ viewer: Viewer }>(VIEWER);
      setViewer(d.viewer);
      setError(null);
      setUnreachable(false);
    } catch (e) {
      const code = e instanceof ApiError ? e.code : 'ERROR';
      // only a refused credential signs out; a reload during a restart must not
      const refused = code === 'UNAUTHENTICATED' || code === 'FORBIDDEN';
      if (refused) saveCredentials(null);
      setUnreachable(!refused);
      setViewer(null);
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setChecking(false);
    }
  };
  useEffect(() => {
    if (loadCredentials()) void check();
  }, []);

  if (checking) return <p class="loading">Signing in…</p>;
  if (!viewer && unreachable && loadCredentials())
    return (
      <main class="login">
        <h1>Earshot console</h1>
        <p role="alert" class="error">
          {error}
        </p>
        <p class="hint">You are still signed in in this tab.</p>
        <button
          onClick={() => {
            setChecking(true);
            void check();
          }}
        >
          Try again
        </button>{' '}
        <button
          class="link"
          onClick={() => {
            saveCredentials(null);
            setUnreachable(false);
            setError(null);
          }}
        >
          Sign out
        </button>
      </main>
    );
  if (!viewer)
    return (
      <Login
        error={error}
        onLogin={(c) => {
          saveCredentials(c);
          setChecking(true);
          void check();
        }}
      />
    );

  const current = route.page === 'customer' ? 'customers' : route.page;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Earshot</span>
        <nav aria-label="Console">
          {NAV.filter((n) => !n.admin || viewer.role === 'admin').map((n) => (
            <a href={`#/${n.page}`} aria-current={current === n.page ? 'page' : undefined}>
              {n.label}
            </a>
          ))}
        </nav>
        <span class="who">
          {viewer.id} · {viewer.role}
          <button
            class="link"
            onClick={() => {
              saveCredentials(null);
              setViewer(null);
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        {route.page === 'queue' && <QueuePage viewer={viewer} />}
        {route.page === 'customers' && <CustomersPage viewer={viewer} />}
        {route.page === 'customer' && route.id && <CustomerPage id={route.id} viewer={viewer} />}
        {route.page === 'departments' && <DepartmentsPage />}
        {route.page === 'admin' && (viewer.role === 'admin' ? <AdminPage /> : <p>The admin page is for the admin role.</p>)}
      </main>
    </>
  );
}

if (loadCredentials() && parseRoute(location.hash).page === 'queue') prefetchQueue();
render(<App />, document.getElementById('app')!);
