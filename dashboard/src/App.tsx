import { lazy, Suspense, useEffect, useState } from "react";
import {
  BrowserRouter,
  Navigate,
  NavLink,
  Outlet,
  Route,
  Routes,
  useLocation,
  useNavigate,
} from "react-router";
import { data, SessionEnded } from "./api/client";
import { ErrorNotice, Loading, currentPath } from "./components/Notice";
import { OperatorContext, useDashboard, useOperator, type SignedIn } from "./context";
import { AuditPage } from "./pages/Audit";
import { CleanupsPage } from "./pages/Cleanups";
import { FlowDetailPage } from "./pages/FlowDetail";
import { FlowsPage } from "./pages/Flows";
import { UserDetailPage } from "./pages/UserDetail";
import { UsersPage } from "./pages/Users";
import { RequireScope } from "./components/RequireScope";
import { Grants, Scope } from "./scopes";

// The overview's charting library is loaded with the overview only.
const OverviewPage = lazy(() => import("./pages/Overview").then((m) => ({ default: m.OverviewPage })));

export function App() {
  return (
    <BrowserRouter>
      <Routes>
        <Route path="/login" element={<SignedOutPage />} />
        <Route path="/auth/callback" element={<CallbackPage />} />
        <Route element={<RequireOperator />}>
          <Route element={<Layout />}>
            <Route index element={<Home />} />
            <Route
              path="overview"
              element={
                <Suspense fallback={<Loading what="the overview" />}>
                  <OverviewPage />
                </Suspense>
              }
            />
            <Route element={<RequireScope scope={Scope.UsersRead} />}>
              <Route path="users" element={<UsersPage />} />
              <Route path="users/:externalUserId" element={<UserDetailPage />} />
              <Route path="cleanups" element={<CleanupsPage />} />
            </Route>
            <Route element={<RequireScope scope={Scope.FlowsRead} />}>
              <Route path="flows" element={<FlowsPage />} />
              <Route path="flows/:flowId" element={<FlowDetailPage />} />
            </Route>
            <Route element={<RequireScope scope={Scope.AuditRead} />}>
              <Route path="audit" element={<AuditPage />} />
            </Route>
            <Route path="no-access" element={<NoAccess />} />
            <Route path="*" element={<NotFound />} />
          </Route>
        </Route>
      </Routes>
    </BrowserRouter>
  );
}

/** Signs the operator in (or back in) and learns their scopes before any page shows. */
function RequireOperator() {
  const { session, api } = useDashboard();
  const [state, setState] = useState<
    { step: "loading" } | { step: "ready"; value: SignedIn } | { step: "failed"; error: unknown }
  >({ step: "loading" });

  useEffect(() => {
    let live = true;
    (async () => {
      const user = await session.restore();
      if (!user) {
        await session.signIn(currentPath());
        return;
      }
      const operator = await data(api.client.GET("/api/management/v1/me"));
      if (live) setState({ step: "ready", value: { operator, grants: new Grants(operator.scopes) } });
    })().catch(async (error: unknown) => {
      if (error instanceof SessionEnded) await session.forget();
      if (live) setState({ step: "failed", error });
    });
    return () => {
      live = false;
    };
  }, [session, api]);

  if (state.step === "loading")
    return (
      <Centered>
        <Loading what="your sign-in" />
      </Centered>
    );
  if (state.step === "failed")
    return (
      <Centered>
        <ErrorNotice error={state.error} />
      </Centered>
    );
  return (
    <OperatorContext.Provider value={state.value}>
      <Outlet />
    </OperatorContext.Provider>
  );
}

function Layout() {
  const { session } = useDashboard();
  const { operator, grants } = useOperator();
  return (
    <div className="shell">
      <header className="topbar">
        <span className="brand">biometric-passkey</span>
        <nav aria-label="Sections">
          {grants.sections().map((s) => (
            <NavLink key={s.path} to={s.path}>
              {s.label}
            </NavLink>
          ))}
        </nav>
        <span className="operator" title={operator.scopes.join(" ")}>
          {operator.sub}
        </span>
        <button type="button" onClick={() => void session.signOut()}>
          Sign out
        </button>
      </header>
      <main>
        <Outlet />
      </main>
    </div>
  );
}

function Home() {
  const { grants } = useOperator();
  return <Navigate to={grants.home()} replace />;
}

function NoAccess() {
  return (
    <section>
      <h1>No management access</h1>
      <p>
        You are signed in, but your sign-in carries none of the scopes that open a section of this dashboard (
        <code>management.users.read</code>, <code>management.flows.read</code>,{" "}
        <code>management.audit.read</code>). Ask your administrator for the access you need.
      </p>
    </section>
  );
}

function NotFound() {
  const location = useLocation();
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        Nothing lives at <code>{location.pathname}</code>. <NavLink to="/">Go to the start page</NavLink>.
      </p>
    </section>
  );
}

/** The post-logout page: signed out, with a way back in. */
function SignedOutPage() {
  const { session } = useDashboard();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <Centered>
      <h1>biometric-passkey management</h1>
      <p>You are signed out.</p>
      <button
        type="button"
        className="primary"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          session.signIn("/").catch((e: unknown) => {
            setError(e);
            setBusy(false);
          });
        }}
      >
        {busy ? "Redirecting…" : "Sign in"}
      </button>
      {error ? (
        <ErrorNotice
          error={new Error("Sign-in could not start: the identity provider did not answer as expected.")}
        />
      ) : null}
    </Centered>
  );
}

function CallbackPage() {
  const { session } = useDashboard();
  const navigate = useNavigate();
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    session.completeSignIn().then(
      (returnTo) => navigate(returnTo, { replace: true }),
      (e: unknown) => setError(e),
    );
  }, [session, navigate]);
  if (error) {
    return (
      <Centered>
        <ErrorNotice
          error={
            new Error(`Sign-in did not complete: ${error instanceof Error ? error.message : "unknown error"}`)
          }
        />
        <p>
          <a href="/login">Back to sign-in</a>
        </p>
      </Centered>
    );
  }
  return (
    <Centered>
      <Loading what="your sign-in" />
    </Centered>
  );
}

function Centered({ children }: { children: React.ReactNode }) {
  return <div className="centered">{children}</div>;
}
