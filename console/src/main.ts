// LabVault's console: Preact + htm (no JSX build step, about 5 kB), Pico's classless CSS, a hash
// router. Every page is a form or a table over the same /api a curl user calls; nothing here holds
// rules of its own. Forms have visible labels and actions are buttons with their name on them.
// Pages live in pages/ by who uses them; the building blocks in ui.ts.
import { h, render } from 'preact';
import { api, hasToken, setToken } from './api.js';
import { html, useHash, type Me } from './ui.js';
import { Login, Profile } from './pages/account.js';
import { Audit, Exports, Integrations, Notifications, Retention, Roles, StaffAccess, Users } from './pages/tenant.js';
import { Approvals, Backups, Certificates, Orchestrations, Tenants } from './pages/operator.js';
import { Alerts, Breaches } from './pages/security.js';
import { SubjectRequests } from './pages/subjects.js';
import { Measures, SubProcessors } from './pages/contract.js';
import { useState } from 'preact/hooks';

interface Page {
  path: string;
  title: string;
  show: (me: Me) => boolean;
  component: (props: { me: Me }) => unknown;
}

const can = (me: Me, permission: string) => me.permissions.includes(permission);
const PAGES: Page[] = [
  { path: '#/profile', title: 'Profile', show: () => true, component: Profile },
  { path: '#/users', title: 'Users', show: (me) => can(me, 'users:manage'), component: Users },
  { path: '#/roles', title: 'Roles', show: (me) => can(me, 'roles:manage'), component: Roles },
  {
    path: '#/integrations',
    title: 'Integrations',
    show: (me) => can(me, 'integrations:manage'),
    component: Integrations,
  },
  { path: '#/exports', title: 'Exports', show: (me) => can(me, 'exports:start'), component: Exports },
  {
    path: '#/subject-requests',
    title: 'Subject requests',
    show: (me) => can(me, 'subject-requests:manage'),
    component: SubjectRequests,
  },
  { path: '#/audit', title: 'Audit trail', show: (me) => can(me, 'audit:read'), component: Audit },
  { path: '#/retention', title: 'Retention', show: (me) => can(me, 'retention:manage'), component: Retention },
  { path: '#/access', title: 'Staff access', show: (me) => can(me, 'access-requests:approve'), component: StaffAccess },
  {
    path: '#/notifications',
    title: 'Breach notifications',
    show: (me) => can(me, 'breaches:acknowledge'),
    component: Notifications,
  },
  { path: '#/tenants', title: 'Tenants', show: (me) => can(me, 'tenants:manage'), component: Tenants },
  { path: '#/approvals', title: 'Approvals', show: (me) => me.realm === 'operator', component: Approvals },
  { path: '#/certificates', title: 'Certificates', show: (me) => can(me, 'tenants:manage'), component: Certificates },
  { path: '#/backups', title: 'Backups', show: (me) => can(me, 'backups:manage'), component: Backups },
  {
    path: '#/orchestrations',
    title: 'Orchestrations',
    show: (me) => can(me, 'orchestrations:manage'),
    component: Orchestrations,
  },
  { path: '#/breaches', title: 'Breach register', show: (me) => can(me, 'breaches:manage'), component: Breaches },
  {
    path: '#/alerts',
    title: 'Security alerts',
    show: (me) => can(me, 'security:read') || (me.realm !== 'operator' && can(me, 'audit:read')),
    component: Alerts,
  },
  {
    path: '#/sub-processors',
    title: 'Sub-processors',
    show: (me) => can(me, 'sub-processors:object') || can(me, 'tenants:manage') || can(me, 'security:read'),
    component: SubProcessors,
  },
  {
    path: '#/measures',
    title: 'Measures (TOMs)',
    show: (me) => (me.realm === 'operator' ? can(me, 'security:read') : can(me, 'audit:read')),
    component: Measures,
  },
];

function App() {
  const [me, setMe] = useState<Me | undefined>();
  const hash = useHash();
  if (!me || !hasToken()) return html`<${Login} onSignedIn=${setMe} />`;
  const pages = PAGES.filter((p) => p.show(me));
  const page = pages.find((p) => p.path === hash) ?? pages[0];
  const logout = async () => {
    await api('POST', '/auth/logout').catch(() => undefined);
    setToken(undefined);
    setMe(undefined);
  };
  return html`<div class="container">
    <header>
      <nav aria-label="Main">
        <ul>
          <li><strong>LabVault</strong> · ${me.username} (${me.realm})</li>
        </ul>
        <ul>
          ${pages.map((p) => html`<li><a href=${p.path} aria-current=${p === page ? 'page' : undefined}>${p.title}</a></li>`)}
          <li><button type="button" class="secondary" onClick=${() => void logout()}>Log out</button></li>
        </ul>
      </nav>
    </header>
    <main>${page ? h(page.component as (props: { me: Me }) => null, { me }) : null}</main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app') as HTMLElement);
