// A secret scan of the tracked files (run by .ci/run): storage account keys, connection strings
// with keys, private keys, LabVault API/refresh tokens and JWTs must never be committed. The one
// allowed key is Azurite's public development key.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { AZURITE_KEY } from '../local-host/azurite.js';

const PATTERNS: [string, RegExp][] = [
  ['storage account key', /AccountKey=([A-Za-z0-9+/=]{40,})/g],
  ['private key', /-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----/g],
  ['LabVault API key', /lvk_[a-z0-9-]{3,32}_[0-9a-f]{16}_[0-9a-f]{64}/g],
  ['LabVault refresh token', /lvr_[a-z0-9-]{3,32}_[0-9a-f]{32}_[0-9a-f]{16}_[0-9a-f]{64}/g],
  ['JSON Web Token', /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/g],
  ['Azure SAS signature', /[?&]sig=[A-Za-z0-9%+/=]{20,}/g],
];

const files = execFileSync('git', ['ls-files'], { encoding: 'utf8' })
  .split('\n')
  .filter((f) => f && !f.endsWith('package-lock.json'));
const findings: string[] = [];
for (const file of files) {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    continue;
  }
  for (const [kind, pattern] of PATTERNS) {
    for (const match of text.matchAll(pattern)) {
      if (kind === 'storage account key' && match[1] === AZURITE_KEY) continue;
      const line = text.slice(0, match.index).split('\n').length;
      findings.push(`${file}:${line}: ${kind}`);
    }
  }
}
if (findings.length > 0) {
  process.stderr.write(`secret scan: ${findings.length} finding(s)\n${findings.join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(`secret scan: ${files.length} tracked files, no secrets\n`);
