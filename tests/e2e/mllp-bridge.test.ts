// The MLLP bridge on loopback: frames split across TCP writes and several frames in one write reach
// LabVault's /api/hl7v2 and their ACKs come back framed, in order.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, type RunningHost, startHost } from '../support/local-host.js';

let host: RunningHost;
let bridge: ChildProcess;
let bridgePort: number;
let key: string;
const OML = readFileSync('docs/examples/order.oml-o21.hl7', 'utf8').trim().split('\n').join('\r') + '\r';
const frame = (message: string) =>
  Buffer.concat([Buffer.from([0x0b]), Buffer.from(message), Buffer.from([0x1c, 0x0d])]);

beforeAll(async () => {
  host = await startHost();
  admin(host.dataDir, ['tenant', 'create', '--id', 'lab-mllp', '--name', 'Lab MLLP']);
  key = String(
    admin(host.dataDir, [
      'integration',
      'create',
      '--tenant',
      'lab-mllp',
      '--name',
      'lis',
      '--permissions',
      'orders:create,orders:read',
    ]).json?.apiKey,
  );
  bridge = spawn(process.execPath, ['--import', 'tsx', 'scripts/mllp-bridge.ts'], {
    env: {
      ...process.env,
      LABVAULT_MLLP_URL: `${host.apiBaseUrl}/hl7v2`,
      LABVAULT_MLLP_API_KEY: key,
      LABVAULT_MLLP_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  bridgePort = await new Promise<number>((resolve, reject) => {
    let out = '';
    bridge.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on [^:]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    bridge.on('exit', (code) => reject(new Error(`bridge exited ${code}`)));
  });
});
afterAll(async () => {
  bridge?.kill();
  await host?.kill();
});

/** Sends the chunks on one connection and collects `count` ACK frames. */
function exchange(chunks: Buffer[], count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(bridgePort, '127.0.0.1');
    let received = Buffer.alloc(0);
    const acks: string[] = [];
    socket.on('data', (c: Buffer) => {
      received = Buffer.concat([received, c]);
      for (
        let end = received.indexOf(Buffer.from([0x1c, 0x0d]));
        end >= 0;
        end = received.indexOf(Buffer.from([0x1c, 0x0d]))
      ) {
        acks.push(received.subarray(received.indexOf(0x0b) + 1, end).toString('utf8'));
        received = received.subarray(end + 2);
      }
      if (acks.length === count) {
        socket.end();
        resolve(acks);
      }
    });
    socket.on('error', reject);
    // One chunk every 50 ms, so the bridge sees a frame arrive in parts.
    socket.on('connect', () => {
      chunks.forEach((chunk, i) => setTimeout(() => socket.write(chunk), i * 50));
    });
  });
}

describe('the MLLP bridge', () => {
  it('forwards a frame split across writes and answers its ACK in a frame', async () => {
    const bytes = frame(OML);
    const [ack] = await exchange([bytes.subarray(0, 17), bytes.subarray(17, 200), bytes.subarray(200)], 1);
    expect(ack).toMatch(/^MSH\|/);
    expect(ack).toContain('\rMSA|AA|KHN-MSG-000815|');
    const found = await fetch(`${host.apiBaseUrl}/orders?externalId=KHN-2026-004712`, {
      headers: { authorization: `ApiKey ${key}` },
    });
    expect(((await found.json()) as { items: unknown[] }).items).toHaveLength(1);
  });

  it('answers several frames of one write in order, an AE for the broken one', async () => {
    const broken = OML.replace('KHN-MSG-000815', 'MSG-BROKEN')
      .replace('|19790315|', '||')
      .replaceAll('KHN-2026-004712', 'KHN-X');
    const acks = await exchange([Buffer.concat([frame(OML), frame(broken)])], 2);
    expect(acks[0]).toContain('MSA|AA|KHN-MSG-000815|'); // the resend: same ACK, nothing stored
    expect(acks[1]).toContain('MSA|AE|MSG-BROKEN|');
    expect(acks[1]).toContain('ERR||PID^1^7|');
  });
});
