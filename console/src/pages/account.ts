// Signing in (with the forced password change and the second factor) and the own profile.
import { useState } from 'preact/hooks';
import QRCode from 'qrcode';
import { api, setToken } from '../api.js';
import { CurrentPasswordField, Field, html, Outcome, useAction, type Me } from '../ui.js';

export function Login({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  const [tenant, setTenant] = useState('');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [newPassword, setNewPassword] = useState('');
  const [mustChange, setMustChange] = useState(false);
  const action = useAction();

  const signIn = async (secret: string) => {
    const tokens = await api<{ accessToken: string; mustChangePassword: boolean }>('POST', '/auth/login', {
      tenant,
      username,
      password: secret,
      ...(totp ? { totp } : {}),
    });
    setToken(tokens.accessToken);
    return tokens.mustChangePassword;
  };
  const submit = action.submit(async () => {
    if (mustChange) {
      await api('POST', '/auth/password', { currentPassword: password, newPassword });
      await signIn(newPassword);
      onSignedIn(await api<Me>('GET', '/me'));
    } else if (await signIn(password)) setMustChange(true);
    else onSignedIn(await api<Me>('GET', '/me'));
  });
  return html`<main class="container">
    <h1>LabVault console</h1>
    <form onSubmit=${submit} aria-label=${mustChange ? 'Change password' : 'Log in'}>
      ${
        mustChange
          ? html`<p>This is a one-time password: choose your own before you go on (15 characters or more).</p>
              <${Field}
                label="New password"
                name="newPassword"
                type="password"
                value=${newPassword}
                onInput=${setNewPassword}
                required
                autocomplete="new-password"
              />
              <button type="submit">Change password</button>`
          : html`<${Field}
                label="Tenant (operator for LabVault staff)"
                name="tenant"
                value=${tenant}
                onInput=${setTenant}
                required
              />
              <${Field}
                label="Username"
                name="username"
                value=${username}
                onInput=${setUsername}
                required
                autocomplete="username"
              />
              <${Field}
                label="Password"
                name="password"
                type="password"
                value=${password}
                onInput=${setPassword}
                required
                autocomplete="current-password"
              />
              <${Field}
                label="One-time code (if you use a second factor)"
                name="totp"
                value=${totp}
                onInput=${setTotp}
                autocomplete="one-time-code"
              />
              <button type="submit">Log in</button>`
      }
      <${Outcome} error=${action.error} />
    </form>
  </main>`;
}

export function Profile({ me }: { me: Me }) {
  const action = useAction();
  const [password, setPassword] = useState('');
  const [enrolment, setEnrolment] = useState<{ secret: string; qr: string } | undefined>();
  const [code, setCode] = useState('');
  const [recovery, setRecovery] = useState<string[] | undefined>();
  const start = action.submit(async () => {
    const { otpauthUri, secret } = await api<{ otpauthUri: string; secret: string }>('POST', '/me/mfa/totp', {
      currentPassword: password,
    });
    // Drawn here, in the page: the secret never goes to another service to become a picture.
    const svg = await QRCode.toString(otpauthUri, { type: 'svg', margin: 1 });
    setEnrolment({ secret, qr: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}` });
  });
  const confirm = action.submit(async () => {
    const { recoveryCodes } = await api<{ recoveryCodes: string[] }>('POST', '/me/mfa/totp/confirmation', {
      code,
      currentPassword: password,
    });
    setRecovery(recoveryCodes);
  });
  return html`<section>
    <h2>Your profile</h2>
    <p>${me.username} · ${me.realm} · roles: ${me.roles.join(', ') || 'none'}</p>
    <form onSubmit=${enrolment ? confirm : start} aria-label="Second factor">
      <h3>Second factor (TOTP)</h3>
      <${CurrentPasswordField} value=${password} onInput=${setPassword} />
      ${
        enrolment
          ? html`<img src=${enrolment.qr} alt="QR code to scan with your authenticator app" width="200" height="200" />
              <p>Or enter the secret by hand: <code data-testid="totp-secret">${enrolment.secret}</code></p>
              <${Field}
                label="Code from your authenticator app"
                name="code"
                value=${code}
                onInput=${setCode}
                required
                autocomplete="one-time-code"
              />
              <button type="submit">Confirm second factor</button>`
          : html`<button type="submit">Set up a second factor</button>`
      }
      <${Outcome}
        error=${action.error}
        done=${
          recovery &&
          html`<p>Second factor active. Recovery codes (shown once, each works once):</p>
            <ul data-testid="recovery-codes">
              ${recovery.map((c) => html`<li><code>${c}</code></li>`)}
            </ul>`
        }
      />
    </form>
  </section>`;
}
