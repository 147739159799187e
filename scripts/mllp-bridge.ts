// `npm run mllp-bridge`: HL7 v2 over MLLP for systems that cannot speak HTTP. Azure Functions cannot
// listen on TCP, so this small process runs on the lab's side (as Medplum's agent does): it takes
// MLLP frames (0x0B message 0x1C 0x0D), posts each message to LabVault's /api/hl7v2 with an
// integration key and writes LabVault's ACK back in a frame. A message LabVault did not answer
// with an ACK (network down, 5xx) gets no ACK, so the sender sends it again, as MLLP senders do.
//
// Settings: LABVAULT_MLLP_URL (the /api/hl7v2 URL), LABVAULT_MLLP_API_KEY (never on the command
// line, where other users of the machine could read it), LABVAULT_MLLP_PORT (2575),
// LABVAULT_MLLP_HOST (127.0.0.1; the address to listen on).
import { createServer, type Socket } from 'node:net';

const START = 0x0b;
const END = Buffer.from([0x1c, 0x0d]);
const HL7_ER7 = 'x-application/hl7-v2+er7';

function setting(name: string, fallback?: string): string {
  const value = process.env[name] || fallback;
  if (!value) {
    process.stderr.write(`mllp-bridge: set ${name}\n`);
    process.exit(2);
  }
  return value;
}

const url = setting('LABVAULT_MLLP_URL');
const apiKey = setting('LABVAULT_MLLP_API_KEY');
const port = Number(setting('LABVAULT_MLLP_PORT', '2575'));
const host = setting('LABVAULT_MLLP_HOST', '127.0.0.1');
if (!/^https:\/\/|^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(url)) {
  process.stderr.write('mllp-bridge: LABVAULT_MLLP_URL must be https (plain http only to this machine)\n');
  process.exit(2);
}

/** Posts one message; the ACK bytes, or undefined when LabVault answered no ACK. */
async function forward(message: Buffer): Promise<Buffer | undefined> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `ApiKey ${apiKey}`, 'content-type': HL7_ER7 },
      body: message,
      signal: AbortSignal.timeout(30_000),
    });
    const body = Buffer.from(await response.arrayBuffer());
    if (!(response.headers.get('content-type') ?? '').startsWith(HL7_ER7)) {
      process.stderr.write(`mllp-bridge: no ACK from LabVault (HTTP ${response.status}); the sender will resend\n`);
      return undefined;
    }
    return body;
  } catch (error) {
    process.stderr.write(`mllp-bridge: LabVault unreachable (${(error as Error).name}); the sender will resend\n`);
    return undefined;
  }
}

/** One connection: frames may arrive split or several at once; ACKs go back in the order messages came. */
function serve(socket: Socket): void {
  let buffer = Buffer.alloc(0);
  let queue = Promise.resolve();
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const start = buffer.indexOf(START);
      if (start < 0) {
        buffer = Buffer.alloc(0); // bytes outside a frame are noise
        return;
      }
      const end = buffer.indexOf(END, start + 1);
      if (end < 0) {
        buffer = buffer.subarray(start);
        if (buffer.length > 4 * 1024 * 1024) socket.destroy(); // no frame is this large
        return;
      }
      const message = buffer.subarray(start + 1, end);
      buffer = buffer.subarray(end + END.length);
      queue = queue.then(async () => {
        const ack = await forward(message);
        if (ack && !socket.destroyed) socket.write(Buffer.concat([Buffer.from([START]), ack, END]));
      });
    }
  });
  socket.on('error', () => socket.destroy());
}

const server = createServer(serve);
server.listen(port, host, () => {
  const address = server.address();
  const listening = typeof address === 'object' && address ? address.port : port;
  process.stdout.write(`mllp-bridge listening on ${host}:${listening}, forwarding to ${url}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
