// The web console in a real Chromium (Debian's, driven by playwright-core; LABVAULT_CHROMIUM names
// another binary) against a local host: the duties of an operator, a tenant admin and a security
// officer done by clicking, found by their labels and button names. Each page is screenshotted to
// test-results/console/ and checked with axe (no serious or critical violation).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Secret, TOTP } from 'otpauth';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleOrder } from '../support/fixtures.js';
import { admin as adminCli, type RunningHost, startHost } from '../support/local-host.js';
import { testServices } from '../support/services.js';

const CHROMIUM = process.env.LABVAULT_CHROMIUM || '/usr/bin/chromium';
const SHOTS = 'test-results/console';
const OPERATOR_PASSWORD = 'first-start-operator-password-41';
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let host: RunningHost;
let browser: Browser;
let consoleUrl: string;
const violations: string[] = [];
const OPERATOR_OWN_PASSWORD = 'night shift lanterns amber 2026';

/** Screenshot and axe for the page as it stands. */
async function check(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
  // Evaluated through the DevTools protocol, so the page's CSP (no inline script) stays in force.
  await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const result = await (
      globalThis as unknown as {
        axe: { run: () => Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> };
      }
    ).axe.run();
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
  for (const v of found)
    if (v.impact === 'serious' || v.impact === 'critical')
      violations.push(`${name}: ${v.id} (${v.impact}, ${v.nodes} nodes)`);
}

async function logIn(page: Page, tenant: string, username: string, password: string): Promise<void> {
  await page.goto(consoleUrl);
  await page.getByLabel('Tenant (operator for LabVault staff)').fill(tenant);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

/** First login: the one-time password, then one's own. */
async function firstLogIn(page: Page, tenant: string, username: string, oneTime: string, own: string, shot: string) {
  await logIn(page, tenant, username, oneTime);
  await page.getByLabel('New password').waitFor();
  await check(page, shot);
  await page.getByLabel('New password').fill(own);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

/** What has the keyboard focus: its aria-label, its label's text and its own text, for matching. */
function focusedText(page: Page): Promise<string> {
  return page.evaluate(() => {
    interface Focused {
      tagName: string;
      getAttribute(name: string): string | null;
      closest(selector: string): { textContent: string | null } | null;
      textContent: string | null;
    }
    const el = (globalThis as unknown as { document: { activeElement: Focused | null } }).document.activeElement;
    if (!el || el.tagName === 'BODY' || el.tagName === 'HTML') return ''; // nothing focused yet
    return [el.getAttribute('aria-label'), el.closest('label')?.textContent, el.textContent].join('|');
  });
}

/** Presses Tab until the focus is on what `name` describes: a keyboard user's way there. */
async function tabTo(page: Page, name: RegExp): Promise<void> {
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press('Tab');
    if (name.test(await focusedText(page))) return;
  }
  throw new Error(`Tab never reached ${String(name)}`);
}

/** Starts a backup on the Backups page and waits until it is listed; its id. */
async function backUpNow(operator: Page): Promise<string> {
  await operator.getByRole('button', { name: 'Start backup now' }).click();
  const backupId = (await operator.getByTestId('backup-started').textContent()) ?? '';
  await expect
    .poll(
      async () => {
        await operator.getByRole('button', { name: 'Refresh backups' }).click();
        return operator.getByRole('cell', { name: backupId, exact: true }).count();
      },
      { timeout: 60_000 },
    )
    .toBe(1);
  return backupId;
}

async function apiLogin(tenant: string, username: string, password: string): Promise<Record<string, string>> {
  const response = await fetch(`${host.apiBaseUrl}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tenant, username, password }),
  });
  const { accessToken } = (await response.json()) as { accessToken: string };
  return { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' };
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`No Chromium at ${CHROMIUM}: apt-get install -y chromium, or set LABVAULT_CHROMIUM`);
  mkdirSync(SHOTS, { recursive: true });
  host = await startHost({ env: { LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD } });
  consoleUrl = `${host.apiBaseUrl}/console/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}, 90_000);
afterAll(async () => {
  await browser?.close();
  await host?.kill();
});

describe('the web console in Chromium', () => {
  it('is served with a strict policy: no inline script, never framed, the page never cached, assets for a year', async () => {
    const page = await fetch(consoleUrl);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('cache-control')).toBe('no-store');
    const html = await page.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // every script is a file
    const asset = /assets\/(app-[0-9a-f]{16}\.js)/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(`${consoleUrl}assets/${asset}`);
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${consoleUrl}assets/..%2F..%2Fhost.json`)).status).toBe(404);
    expect((await fetch(`${consoleUrl}assets/app-0000000000000000.js`)).status).toBe(404);
    expect((await fetch(`${consoleUrl}nothing-here`)).status).toBe(404);
  });

  it('takes each role through its duties: tenant, users, key, export, breach and acknowledgement, termination', async () => {
    const operator = await (await browser.newContext({ acceptDownloads: true })).newPage();
    const operatorPassword = OPERATOR_OWN_PASSWORD;
    await firstLogIn(operator, 'operator', 'operator', OPERATOR_PASSWORD, operatorPassword, '01-first-login');

    // Operator: a tenant with its first admin.
    await operator.getByRole('link', { name: 'Tenants' }).click();
    await operator.getByLabel('Tenant id').fill('lab-ui');
    await operator.getByLabel('Name', { exact: true }).fill('Lab UI');
    await operator.getByLabel("First admin's username").fill('ada');
    await operator.getByLabel("First admin's e-mail").fill('ada@lab-ui.example');
    await operator.getByRole('button', { name: 'Create tenant' }).click();
    const adaOneTime = (await operator.getByTestId('one-time-password').textContent()) ?? '';
    expect(adaOneTime).toMatch(/^\S{20}$/);
    await check(operator, '02-tenants');

    // Tenant admin: first login, a user with a role, an integration key, an export, the audit trail.
    const admin = await (await browser.newContext({ acceptDownloads: true })).newPage();
    const adaPassword = 'quiet harbour lights at dusk';
    await firstLogIn(admin, 'lab-ui', 'ada', adaOneTime, adaPassword, '03-password-change');
    await admin.getByRole('link', { name: 'Users' }).click();
    await admin.getByLabel('Username').fill('bob');
    await admin.getByLabel('E-mail').fill('bob@lab-ui.example');
    await admin.getByLabel(/^Role \(a new account/).selectOption('tenant-admin');
    await admin.getByRole('button', { name: 'Create user' }).click();
    await expect.poll(() => admin.getByTestId('one-time-password').textContent()).toMatch(/^\S{20}$/);
    await expect.poll(() => admin.getByRole('cell', { name: 'bob', exact: true }).count()).toBe(1);
    await check(admin, '04-users');

    await admin.getByRole('link', { name: 'Integrations' }).click();
    await admin.getByLabel('Name').fill('lis');
    await admin.getByLabel('images:upload').check();
    await admin.getByLabel('Your current password').fill(adaPassword);
    await admin.getByRole('button', { name: 'Create integration' }).click();
    const key = (await admin.getByTestId('api-key').textContent()) ?? '';
    expect(key).toMatch(/^lvk_lab-ui_/);
    // The key works, with the permissions ticked.
    const order = await fetch(`${host.apiBaseUrl}/orders?limit=1`, { headers: { authorization: `ApiKey ${key}` } });
    expect(order.status).toBe(200);
    await check(admin, '05-integrations');

    await admin.getByRole('link', { name: 'Exports' }).click();
    await admin.getByLabel('Your current password').fill(adaPassword);
    await admin.getByRole('button', { name: 'Start export' }).click();
    await expect.poll(() => admin.getByTestId('export-status').textContent(), { timeout: 60_000 }).toBe('completed');
    const shownSha = (await admin.getByTestId('export-sha256').textContent()) ?? '';
    // The archive comes with the password again (a stolen session token alone takes none).
    const download = admin.getByRole('form', { name: 'Download archive' });
    await download.getByLabel('Your current password').fill(adaPassword);
    await download.getByRole('button', { name: 'Get a download link' }).click();
    const href = (await admin.getByRole('link', { name: 'Download archive' }).getAttribute('href')) ?? '';
    const archive = Buffer.from(await (await fetch(href)).arrayBuffer());
    expect(createHash('sha256').update(archive).digest('hex')).toBe(shownSha);
    await check(admin, '06-export');

    await admin.getByRole('link', { name: 'Audit trail' }).click();
    await expect.poll(() => admin.getByTestId('chain-badge').textContent()).toBe('Chain verified');
    await admin.getByLabel('Filter by event').fill('integration');
    await expect.poll(() => admin.getByRole('cell', { name: 'integration.create' }).count()).toBe(1);
    await check(admin, '07-audit');

    // Security officer (the bootstrap operator holds the role): a breach against lab-ui, its clocks.
    await operator.getByRole('link', { name: 'Breach register' }).click();
    await operator.getByLabel('Affected tenants (comma-separated)').fill('lab-ui');
    await operator.getByLabel('What happened').fill('A support laptop with an export was stolen');
    await operator.getByLabel('Likely consequences').fill('Disclosure of order data');
    await operator.getByLabel('Measures taken').fill('Device wiped, keys rotated');
    await operator.getByRole('button', { name: 'Report breach' }).click();
    await operator.getByRole('img', { name: /Our 24 hours to notify every tenant: \d+ h \d+ min left/ }).waitFor();
    await operator.getByRole('img', { name: /The controllers' 72 hours: \d+ h \d+ min left/ }).waitFor();
    await check(operator, '08-breach-register');

    // The tenant sees the notification with its own 72-hour clock and acknowledges it.
    await admin.getByRole('link', { name: 'Breach notifications' }).click();
    await expect
      .poll(
        async () => {
          await admin.getByRole('link', { name: 'Profile' }).click();
          await admin.getByRole('link', { name: 'Breach notifications' }).click();
          // Counted once the list has loaded: either its notifications or the sentence for none.
          await admin
            .getByText('No breach notifications.')
            .or(admin.getByRole('button', { name: 'Acknowledge' }))
            .first()
            .waitFor();
          return admin.getByRole('button', { name: 'Acknowledge' }).count();
        },
        // The notification is the orchestration's activity: a storage retry on a busy two-core
        // machine once took it past 30 s (the waiting is not what this walk checks).
        { timeout: 60_000 },
      )
      .toBe(1);
    await admin.getByRole('img', { name: /Your 72 hours to notify the authority/ }).waitFor();
    await check(admin, '09-notifications');
    await admin.getByRole('button', { name: 'Acknowledge' }).click();
    await admin.getByTestId('acknowledged').waitFor();
    await operator.getByRole('button', { name: 'Refresh breach' }).click();
    await operator.getByTestId('tenant-acknowledged').waitFor();

    // Operator: termination with its timeline, then withdrawn.
    await operator.getByRole('link', { name: 'Tenants' }).click();
    await operator.getByLabel('Tenant to terminate').fill('lab-ui');
    await operator.getByRole('button', { name: 'Record termination' }).click();
    await expect.poll(() => operator.getByTestId('deletion-status').textContent()).toBe('scheduled');
    await operator.getByRole('img', { name: /Timeline: Termination recorded .*Deletion/ }).waitFor();
    await check(operator, '10-termination');
    await operator.getByRole('button', { name: 'Withdraw termination' }).click();
    await expect.poll(() => operator.getByTestId('deletion-status').textContent()).toBe('withdrawn');

    // Tenant admin: a second factor from the QR page, the retention policy.
    await admin.getByRole('link', { name: 'Profile' }).click();
    await admin.getByLabel('Your current password').fill(adaPassword);
    await admin.getByRole('button', { name: 'Set up a second factor' }).click();
    await admin.getByRole('img', { name: 'QR code to scan with your authenticator app' }).waitFor();
    const secret = (await admin.getByTestId('totp-secret').textContent()) ?? '';
    await admin
      .getByLabel('Code from your authenticator app')
      .fill(new TOTP({ secret: Secret.fromBase32(secret) }).generate());
    await check(admin, '11-second-factor');
    await admin.getByRole('button', { name: 'Confirm second factor' }).click();
    await expect.poll(() => admin.getByTestId('recovery-codes').getByRole('listitem').count()).toBe(10);

    await admin.getByRole('link', { name: 'Retention' }).click();
    await admin.getByLabel(/^Keep orders/).fill('3660');
    await admin.getByRole('button', { name: 'Save retention policy' }).click();
    await admin.getByText('Saved.').waitFor();
    await check(admin, '12-retention');

    // Staff access: an operator asks (over the API), the tenant approves in the console, then ends it.
    const operatorToken = (await (
      await fetch(`${host.apiBaseUrl}/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tenant: 'operator', username: 'operator', password: operatorPassword }),
      })
    ).json()) as { accessToken: string };
    const asOperator = { authorization: `Bearer ${operatorToken.accessToken}`, 'content-type': 'application/json' };
    const request = await fetch(`${host.apiBaseUrl}/access-requests`, {
      method: 'POST',
      headers: asOperator,
      body: JSON.stringify({
        tenant: 'lab-ui',
        reason: 'Ticket 4711: export stuck',
        minutes: 30,
        permissions: ['audit:read'],
      }),
    });
    expect(request.status).toBe(201);
    await admin.getByRole('link', { name: 'Staff access' }).click();
    await admin.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => admin.getByTestId('access-status').textContent()).toMatch(/^approved until/);
    await check(admin, '13-staff-access');
    await admin.getByRole('button', { name: 'End access now' }).click();
    await expect.poll(() => admin.getByTestId('access-status').textContent()).toBe('revoked');

    // Operator: a backup, its deletion waiting for a second operator, the orchestrations, the alerts.
    await operator.getByRole('link', { name: 'Backups' }).click();
    const backupId = await backUpNow(operator);
    await check(operator, '14-backups');
    const asked = await fetch(`${host.apiBaseUrl}/backups/${backupId}?reason=drill`, {
      method: 'DELETE',
      headers: asOperator,
    });
    expect(asked.status).toBe(202);
    await operator.getByRole('link', { name: 'Approvals' }).click();
    await operator.getByText('waiting for a second operator').waitFor();
    await check(operator, '15-approvals');
    await operator.getByRole('link', { name: 'Orchestrations' }).click();
    await expect.poll(() => operator.getByRole('cell', { name: 'tableBackup' }).count()).toBeGreaterThan(0);
    await check(operator, '16-orchestrations');
    await operator.getByRole('link', { name: 'Security alerts' }).click();
    await check(operator, '17-security-alerts');

    // Contract end again; this time the tenant's admin deletes at once, and the certificate verifies.
    await operator.getByRole('link', { name: 'Tenants' }).click();
    await operator.getByLabel('Tenant to terminate').fill('lab-ui');
    await operator.getByRole('button', { name: 'Record termination' }).click();
    await expect.poll(() => operator.getByTestId('deletion-status').textContent()).toBe('scheduled');
    await admin.getByRole('link', { name: 'Audit trail' }).click();
    await admin.getByRole('link', { name: 'Retention' }).click();
    await admin.getByTestId('notice').first().waitFor();
    await admin.getByLabel('Your current password, to confirm').fill(adaPassword);
    await admin.getByRole('button', { name: 'Delete all data now' }).click();
    await admin.getByTestId('deletion-started').waitFor();
    await operator.getByRole('link', { name: 'Certificates' }).click();
    await operator.getByLabel('Tenant', { exact: true }).fill('lab-ui');
    await expect
      .poll(
        async () => {
          await operator.getByRole('button', { name: 'Show deletion' }).click();
          return operator.getByTestId('certificate-status').textContent();
        },
        { timeout: 90_000 },
      )
      .toBe('completed');
    await operator.getByRole('button', { name: 'Verify signature' }).click();
    await expect.poll(() => operator.getByTestId('certificate-verified').textContent()).toBe('Signature verified');
    await check(operator, '18-certificate');

    expect(violations).toEqual([]);
  }, 300_000);

  it('does the rest by keyboard and by click: roles, manifest and checksum, the breach record, drafts, legal hold, drills', async () => {
    const asOperator = await apiLogin('operator', 'operator', OPERATOR_OWN_PASSWORD);
    const created = await fetch(`${host.apiBaseUrl}/tenants`, {
      method: 'POST',
      headers: asOperator,
      body: JSON.stringify({
        id: 'lab-two',
        name: 'Lab Two',
        admin: { username: 'grace', email: 'grace@lab-two.example' },
      }),
    });
    expect(created.status).toBe(201);
    const graceOneTime = ((await created.json()) as { admin: { initialPassword: string } }).admin.initialPassword;
    const key = String(
      adminCli(host.dataDir, [
        'integration',
        'create',
        '--tenant',
        'lab-two',
        '--name',
        'lis',
        '--permissions',
        'orders:create',
      ]).json?.apiKey,
    );
    for (let i = 0; i < 3; i++) {
      const order = await fetch(`${host.apiBaseUrl}/orders`, {
        method: 'POST',
        headers: { authorization: `ApiKey ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(exampleOrder({ externalId: `UI-${i}` })),
      });
      expect(order.status).toBe(201);
    }

    // Keyboard only: the first login, the password change and the way to a page, by Tab and Enter.
    const admin = await (await browser.newContext()).newPage();
    await admin.goto(consoleUrl);
    await tabTo(admin, /Tenant/);
    await admin.keyboard.type('lab-two');
    await tabTo(admin, /Username/);
    await admin.keyboard.type('grace');
    await tabTo(admin, /Password/);
    await admin.keyboard.type(graceOneTime);
    await admin.keyboard.press('Enter');
    await admin.getByLabel('New password').waitFor();
    await tabTo(admin, /New password/);
    const gracePassword = 'copper kettles sing at noon';
    await admin.keyboard.type(gracePassword);
    await admin.keyboard.press('Enter');
    await admin.getByRole('navigation', { name: 'Main' }).waitFor();
    await tabTo(admin, /^\|\|Roles$/);
    await admin.keyboard.press('Enter');
    await admin.getByRole('heading', { name: 'Roles' }).waitFor();

    // A custom role, then given to a new account that started with only its own profile.
    await admin.getByLabel('Role name').fill('reader');
    await admin.getByLabel('orders:read').check();
    await admin.getByRole('button', { name: 'Save role' }).click();
    await expect
      .poll(() =>
        admin
          .getByRole('row', { name: /^reader / })
          .getByTestId('role-permissions')
          .textContent(),
      )
      .toBe('orders:read, profile:read, profile:update');
    await check(admin, '19-roles');
    await admin.getByRole('link', { name: 'Users' }).click();
    await admin.getByLabel('Username').fill('carol');
    await admin.getByLabel('E-mail').fill('carol@lab-two.example');
    await admin.getByRole('button', { name: 'Create user' }).click();
    const carol = admin.getByRole('row').filter({ hasText: 'carol' }).getByTestId('user-roles');
    await expect.poll(() => carol.textContent()).toBe('self');
    await admin.getByLabel('Role of carol').selectOption('reader');
    await expect.poll(() => carol.textContent()).toBe('reader');

    // The export's manifest in short, and the archive fetched and hashed in the page.
    await admin.getByRole('link', { name: 'Exports' }).click();
    await admin.getByLabel('Your current password').fill(gracePassword);
    await admin.getByRole('button', { name: 'Start export' }).click();
    await expect.poll(() => admin.getByTestId('export-status').textContent(), { timeout: 60_000 }).toBe('completed');
    await admin.getByRole('row', { name: 'order 3', exact: true }).waitFor();
    const archiveForm = admin.getByRole('form', { name: 'Download archive' });
    await archiveForm.getByLabel('Your current password').fill('not the password at all');
    await archiveForm.getByRole('button', { name: 'Download and verify checksum' }).click();
    await expect.poll(() => admin.getByRole('alert').textContent()).toMatch(/password/i);
    await archiveForm.getByLabel('Your current password').fill(gracePassword);
    await archiveForm.getByRole('button', { name: 'Download and verify checksum' }).click();
    await expect.poll(() => admin.getByTestId('export-verified').textContent()).toBe('Checksum matches');
    await check(admin, '20-export-manifest');

    // A patient asks for their data, then for a restriction that is lifted again; the identifier is typed
    // into the page and never reaches the address bar.
    await admin.getByRole('link', { name: 'Subject requests' }).click();
    const subject = admin.getByRole('form', { name: 'Data subject' });
    await subject.getByLabel('Patient identifier').fill('A123456789');
    await subject.getByRole('button', { name: 'Find data held' }).click();
    await expect.poll(() => admin.getByTestId('subject-found').textContent()).toMatch(/^\s*3 orders \(0 restricted\)/);
    await subject.getByLabel('Format').selectOption('ndjson');
    await subject.getByRole('button', { name: 'Record request' }).click();
    await admin.getByRole('button', { name: 'Download archive' }).click({ timeout: 60_000 });
    const access = admin.getByRole('form', { name: 'Access archive' });
    await access.getByLabel('Your current password').fill(gracePassword);
    await access.getByRole('button', { name: 'Download and verify checksum' }).click();
    await expect.poll(() => admin.getByTestId('subject-verified').textContent()).toBe('Checksum matches');
    await subject.getByLabel('Request').selectOption('restriction');
    await subject.getByRole('button', { name: 'Record request' }).click();
    await admin.getByRole('button', { name: 'Lift restriction' }).click();
    await expect
      .poll(async () => (await admin.getByTestId('subject-status').allTextContents()).sort())
      .toEqual(['completed', 'lifted']);
    expect(admin.url()).not.toContain('A123456789');
    await check(admin, '20b-subject-requests');

    // The breach record: risk, a phased update, the authority's reference, the analysis that closes it.
    const operator = await (await browser.newContext()).newPage();
    await logIn(operator, 'operator', 'operator', OPERATOR_OWN_PASSWORD);
    await operator.getByRole('link', { name: 'Breach register' }).click();
    await operator.getByLabel('Affected tenants (comma-separated)').fill('lab-two');
    await operator.getByLabel('What happened').fill('Misrouted result letters');
    await operator.getByLabel('integrity').check();
    await operator.getByLabel('Risk to the data subjects').selectOption('risk');
    await operator.getByLabel('Likely consequences').fill('Results seen by another practice');
    await operator.getByLabel('Measures taken').fill('Letters recalled');
    await operator.getByRole('button', { name: 'Report breach' }).click();
    await expect.poll(() => operator.getByTestId('breach-risk').textContent()).toBe('risk');
    await operator.getByLabel('What is new').fill('Two more practices received letters');
    await operator.getByLabel('Risk as assessed now').selectOption('high-risk');
    await operator.getByRole('button', { name: 'Send update' }).click();
    await expect.poll(() => operator.getByTestId('breach-risk').textContent()).toBe('high-risk');
    await operator.getByLabel('Authority', { exact: true }).fill('BfDI');
    await operator.getByLabel('Their reference').fill('BfDI-2026-0042');
    await operator.getByRole('button', { name: 'Record authority notification' }).click();
    await expect.poll(() => operator.getByTestId('authority-reference').textContent()).toContain('BfDI-2026-0042');
    // One data subject (the three orders are one patient's); the records are orders, specimens and the like.
    const affected = operator
      .getByRole('table', { name: 'Affected tenants' })
      .getByRole('row')
      .filter({ hasText: 'lab-two' });
    await expect.poll(() => affected.getByRole('cell').nth(1).textContent()).toBe('1');
    expect(Number(await affected.getByRole('cell').nth(2).textContent())).toBeGreaterThanOrEqual(3);
    await operator.getByLabel('Root cause').fill('Printer profile mapped to the wrong practice');
    await operator.getByLabel('Measures against recurrence').fill('Profiles checked at every change');
    await operator.getByLabel('Close the breach with this analysis').check();
    await operator.getByRole('button', { name: 'Record analysis' }).click();
    await expect.poll(() => operator.getByTestId('breach-status').textContent()).toBe('closed');
    await check(operator, '21-breach-record');

    // Ten accounts tried from one source: a spraying alert, turned into a draft, closed unnotified.
    for (let i = 0; i < 10; i++)
      await fetch(`${host.apiBaseUrl}/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tenant: 'lab-two', username: `guess${i}`, password: 'not a real password at all' }),
      });
    await operator.getByRole('link', { name: 'Security alerts' }).click();
    await operator.getByRole('button', { name: 'Start breach draft from password-spraying alert' }).click();
    await operator.getByTestId('breach-draft').waitFor();
    await check(operator, '22-alert-draft');
    await operator.getByRole('link', { name: 'breach register', exact: true }).click();
    await operator.getByRole('row').filter({ hasText: 'draft' }).getByRole('button').click();
    await operator.getByLabel('Why no notification is needed').fill('No login succeeded; no data reached');
    await operator.getByRole('button', { name: 'Close without notification' }).click();
    await expect.poll(() => operator.getByTestId('breach-status').textContent()).toBe('not-notified');
    // The tenant's admins see the alert about their own accounts, and cannot turn it into a breach record.
    await admin.getByRole('link', { name: 'Security alerts' }).click();
    await admin.getByRole('row').filter({ hasText: 'password-spraying' }).waitFor();
    expect(await admin.getByRole('button', { name: /Start breach draft/ }).count()).toBe(0);

    // An erasure a second person confirmed, whose run began after its window and then failed for good,
    // is run again from the page. The run's steps are the service calls the orchestration makes, on
    // a clock moved past the window (storage failing past every retry takes minutes;
    // tests/unit/durable-replay.test.ts drives the orchestration to its failure step).
    await admin.getByRole('link', { name: 'Subject requests' }).click();
    await subject.getByLabel('Patient identifier').fill('B000000001');
    await subject.getByLabel('Request').selectOption('erasure');
    await subject.getByRole('button', { name: 'Record request' }).click();
    await expect
      .poll(async () => admin.getByTestId('subject-status').allTextContents())
      .toContain('awaiting-confirmation');
    let now = new Date();
    const services = await testServices(host.storageConnectionString, () => now, host.dataDir);
    const erasure = (await services.subjects.list('lab-two')).find((r) => r.type === 'erasure')!;
    const serviceMeta = { actor: { type: 'system' as const, id: 'console-test' }, correlationId: 'console-test' };
    await services.subjects.confirmErasure('lab-two', erasure.id, 'another-admin', serviceMeta);
    now = new Date(Date.now() + 2 * 24 * 3600 * 1000);
    expect(await services.subjects.beginErasure('lab-two', erasure.id, serviceMeta)).toEqual({ proceed: true });
    now = new Date();
    await services.subjects.failErasure('lab-two', erasure.id, serviceMeta);
    await admin.getByRole('link', { name: 'Audit trail' }).click();
    await admin.getByRole('link', { name: 'Subject requests' }).click();
    await admin.getByRole('button', { name: 'Run erasure again' }).click();
    // Irreversible: the page asks for the password, and a wrong one runs nothing.
    const rerun = admin.getByRole('form', { name: 'Run erasure again' });
    await rerun.getByLabel('Your current password').fill('not my password at all');
    await rerun.getByRole('button', { name: 'Run erasure again with my password' }).click();
    await rerun.getByRole('alert').waitFor();
    expect((await services.subjects.get('lab-two', erasure.id)).status).toBe('failed');
    await rerun.getByLabel('Your current password').fill(gracePassword);
    await rerun.getByRole('button', { name: 'Run erasure again with my password' }).click();
    await expect
      .poll(async () => (await admin.getByTestId('subject-status').allTextContents()).sort(), { timeout: 30_000 })
      .toEqual(['completed', 'completed', 'lifted']);

    // The contract's living parts: the operator announces the next sub-processor register, the tenant
    // objects within the window, the operator sees the objection and withdraws the change.
    await operator.getByRole('link', { name: 'Sub-processors' }).click();
    const announce = operator.getByRole('form', { name: 'Announce a change' });
    await announce.getByLabel('Summary for the tenants').fill('A courier for reference-lab transfers');
    const register = announce.getByLabel(/New register/);
    await register.fill(
      JSON.stringify([
        ...(JSON.parse(await register.inputValue()) as unknown[]),
        {
          name: 'Pathology Courier GmbH',
          purpose: 'Transport to reference labs',
          location: 'Germany',
          dataCategories: ['orders (encrypted)'],
          safeguards: 'DPA; TLS 1.3',
        },
      ]),
    );
    await announce.getByRole('button', { name: 'Announce change' }).click();
    const change = (page: typeof operator) =>
      page.getByRole('table', { name: 'Announced changes' }).getByRole('row').filter({ hasText: 'A courier' });
    await expect.poll(() => change(operator).getByTestId('change-status').textContent()).toBe('announced');
    await admin.getByRole('link', { name: 'Sub-processors' }).click();
    const objection = admin.getByRole('form', { name: 'Object to: A courier for reference-lab transfers' });
    await objection.getByLabel('Reason for the objection').fill('Our contract excludes couriers.');
    await objection.getByRole('button', { name: 'Record objection' }).click();
    await expect
      .poll(() => change(admin).getByTestId('change-objections').textContent())
      .toBe('lab-two: Our contract excludes couriers.');
    await check(admin, '22b-sub-processors');
    await operator.getByRole('link', { name: 'Tenants' }).click();
    await operator.getByRole('link', { name: 'Sub-processors' }).click();
    await expect
      .poll(() => change(operator).getByTestId('change-objections').textContent())
      .toBe('lab-two: Our contract excludes couriers.');
    await change(operator).getByRole('button', { name: 'Withdraw change' }).click();
    await expect.poll(() => change(operator).getByTestId('change-status').textContent()).toBe('withdrawn');

    // The measures in effect, read from the running system, for the tenant and for the security officer.
    await admin.getByRole('link', { name: 'Measures (TOMs)' }).click();
    await admin.getByRole('region', { name: 'encryption' }).waitFor();
    await check(admin, '22c-measures');
    await operator.getByRole('link', { name: 'Measures (TOMs)' }).click();
    await operator.getByRole('region', { name: 'encryption' }).waitFor();

    // The tenant list, a termination, a legal hold on it, and the lift waiting for a second operator.
    await operator.getByRole('link', { name: 'Tenants' }).click();
    const lifecycle = operator.getByRole('row').filter({ hasText: 'lab-two' }).getByTestId('tenant-lifecycle');
    await expect.poll(() => lifecycle.textContent()).toBe('active');
    await operator.getByLabel('Tenant to terminate').fill('lab-two');
    await operator.getByRole('button', { name: 'Record termination' }).click();
    await expect.poll(() => operator.getByTestId('deletion-status').textContent()).toBe('scheduled');
    await expect.poll(() => lifecycle.textContent()).toMatch(/^scheduled, deletion /);
    await operator.getByRole('button', { name: 'Place legal hold' }).click();
    await expect.poll(() => operator.getByTestId('deletion-status').textContent()).toBe('on-hold');
    await operator.getByRole('img', { name: /Deletion \(held\)/ }).waitFor();
    await expect.poll(() => lifecycle.textContent()).toMatch(/legal hold$/);
    await operator.getByRole('button', { name: 'Ask to lift legal hold' }).click();
    await operator.getByTestId('hold-approval').waitFor();
    await check(operator, '23-legal-hold');
    const held = await fetch(`${host.apiBaseUrl}/tenants/lab-two/deletion`, { headers: asOperator });
    expect(((await held.json()) as { legalHold: boolean }).legalHold).toBe(true); // one operator cannot lift it

    // A backup and its restore drill: every table read back, the result kept beside the backup.
    await operator.getByRole('link', { name: 'Backups' }).click();
    const backupId = await backUpNow(operator);
    await operator.getByRole('button', { name: `Run restore drill on ${backupId}` }).click();
    await expect.poll(() => operator.getByTestId('drill-result').textContent(), { timeout: 60_000 }).toBe('passed');
    await expect
      .poll(() => operator.getByRole('row').filter({ hasText: backupId }).getByTestId('last-drill').textContent())
      .toMatch(/^passed .*\(verification\)$/);
    await check(operator, '24-restore-drill');

    expect(violations).toEqual([]);
  }, 300_000);

  it('keeps tokens out of storage and URLs, and refuses a wrong password in the page', async () => {
    const page = await (await browser.newContext()).newPage();
    await logIn(page, 'operator', 'operator', 'not the password at all');
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/password/i);
    await logIn(page, 'operator', 'operator', OPERATOR_OWN_PASSWORD);
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    const stored = await page.evaluate(
      () =>
        JSON.stringify({ ...localStorage }) +
        JSON.stringify({ ...sessionStorage }) +
        (globalThis as unknown as { document: { cookie: string } }).document.cookie,
    );
    expect(stored).not.toMatch(/eyJ/);
    expect(page.url()).not.toMatch(/eyJ|token/i);
  });
});
