// Small orchestrations for the durable runtime's tests; loaded by the local host through
// LABVAULT_LOCAL_EXTRA_ENTRY, never part of the product.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { app, type HttpRequest, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { startOrchestration } from '../../functions/durable.js';

const log = (line: string) =>
  appendFileSync(join(process.env.LABVAULT_DATA_DIR ?? '.', 'activity-log.txt'), `${line}\n`);
const flaky = new Map<string, number>();

// The worker's hooks, as the local host must call them: appStart before any invocation, then
// pre- and postInvocation around every call (a postInvocation hook may replace the result).
const hookCalls = {
  appStartedBeforeFirstCall: false as boolean | undefined,
  pre: [] as string[],
  post: [] as string[],
};
let invoked = false;
app.hook.appStart(() => {
  hookCalls.appStartedBeforeFirstCall = !invoked;
});
app.hook.preInvocation((context) => {
  invoked = true;
  hookCalls.pre.push(context.invocationContext.functionName);
});
app.hook.postInvocation((context) => {
  hookCalls.post.push(context.invocationContext.functionName);
  if (context.invocationContext.functionName === 'testHooks')
    context.result = { status: 200, jsonBody: { ...hookCalls, replacedByPostInvocation: true } };
});
app.http('testHooks', {
  methods: ['GET'],
  route: 'test/hooks',
  authLevel: 'anonymous',
  handler: () => ({ status: 200, jsonBody: hookCalls }),
});

df.app.activity('testEcho', { handler: (input: number) => input });

df.app.activity('testRecord', {
  handler: async (input: { key: string; delayMs?: number }) => {
    log(`start ${input.key}`);
    if (input.delayMs) await new Promise((r) => setTimeout(r, input.delayMs));
    log(`end ${input.key}`);
    return input.key;
  },
});

df.app.activity('testFlaky', {
  handler: (input: { key: string; failTimes: number }) => {
    const calls = (flaky.get(input.key) ?? 0) + 1;
    flaky.set(input.key, calls);
    if (calls <= input.failTimes) throw new Error(`planned failure ${calls}`);
    return calls;
  },
});

df.app.orchestration('testChain', function* (context) {
  const n = context.df.getInput<number>();
  let sum = 0;
  for (let i = 1; i <= n; i++) sum += (yield context.df.callActivity('testEcho', i)) as number;
  return sum;
});

df.app.orchestration('testStrings', function* (context) {
  const echoed = (yield context.df.callActivity('testEcho', 'a "quoted" string')) as string;
  return { echoed, input: context.df.getInput<string>() };
});

df.app.activity('testLength', { handler: (input: string[]) => input.join('').length });

// Activity inputs larger than a queue message (64 KiB), four at once.
df.app.orchestration('testLargeInputs', function* (context) {
  const kib = context.df.getInput<number>();
  const items = Array.from({ length: kib }, (_, i) => `${i}`.padEnd(1024, '.'));
  const lengths = (yield context.df.Task.all(
    [1, 2, 3, 4].map(() => context.df.callActivity('testLength', items)),
  )) as number[];
  const echoed = (yield context.df.callActivity('testEcho', items)) as string[];
  return { lengths, echoedKib: echoed.length, same: echoed.every((x, i) => x === items[i]) };
});

df.app.orchestration('testFanOut', function* (context) {
  const n = context.df.getInput<number>();
  const results = (yield context.df.Task.all(
    Array.from({ length: n }, (_, i) => context.df.callActivity('testEcho', i + 1)),
  )) as number[];
  context.df.setCustomStatus({ done: results.length });
  return results.reduce((a, b) => a + b, 0);
});

df.app.orchestration('testTimer', function* (context) {
  const ms = context.df.getInput<number>();
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + ms));
  return 'fired';
});

df.app.orchestration('testLongTimer', function* (context) {
  const fireAt = new Date(context.df.getInput<string>());
  yield context.df.createTimer(fireAt);
  return 'fired';
});

df.app.orchestration('testEventOrTimeout', function* (context) {
  const timeoutMs = context.df.getInput<number>();
  const event = context.df.waitForExternalEvent('approval');
  const timer = context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + timeoutMs));
  const winner = (yield context.df.Task.any([event, timer])) as unknown;
  if (winner === event) return { outcome: 'event', value: event.result };
  return { outcome: 'timeout' };
});

df.app.orchestration('testRetry', function* (context) {
  const input = context.df.getInput<{ key: string; failTimes: number; attempts: number }>();
  const options = new df.RetryOptions(200, input.attempts);
  try {
    return { ok: (yield context.df.callActivityWithRetry('testFlaky', options, input)) as number };
  } catch (error) {
    return { failed: error instanceof Error ? error.message.split('\n')[0] : 'failed' };
  }
});

df.app.orchestration('testSubParent', function* (context) {
  const a = (yield context.df.callSubOrchestrator('testChain', 3)) as number;
  const b = (yield context.df.callSubOrchestrator('testChain', 4, `${context.df.instanceId}-child`)) as number;
  return a + b;
});

df.app.orchestration('testContinue', function* (context) {
  const state = context.df.getInput<{ i: number; max: number }>();
  yield context.df.callActivity('testEcho', state.i);
  if (state.i < state.max) {
    context.df.continueAsNew({ i: state.i + 1, max: state.max });
    return undefined;
  }
  return state.i;
});

df.app.orchestration('testWaitForever', function* (context) {
  const value = (yield context.df.waitForExternalEvent('go')) as unknown;
  return { got: value };
});

df.app.orchestration('testCallHttp', function* (context) {
  return yield context.df.callHttp({ method: 'GET', url: 'https://example.com/' });
});

// The product's starter helper, against the real client: "already running" is an answer, the rest is an error.
app.http('testStarterHelper', {
  methods: ['POST'],
  route: 'test/starter/{name}/{instanceId}',
  authLevel: 'anonymous',
  extraInputs: [df.input.durableClient()],
  handler: async (request: HttpRequest, context: InvocationContext) => {
    try {
      return {
        status: 200,
        jsonBody: {
          outcome: await startOrchestration(context, request.params.name ?? '', request.params.instanceId ?? '', null),
        },
      };
    } catch (error) {
      return { status: 500, jsonBody: { error: error instanceof Error ? error.message : String(error) } };
    }
  },
});

// The SDK's client against features the local host does not run: the error must name them.
app.http('testUnsupportedClient', {
  methods: ['POST'],
  route: 'test/unsupported/{feature}',
  authLevel: 'anonymous',
  extraInputs: [df.input.durableClient()],
  handler: async (request: HttpRequest, context: InvocationContext) => {
    const client = df.getClient(context);
    try {
      if (request.params.feature === 'entity') await client.readEntityState(new df.EntityId('counter', 'one'));
      else await client.rewind(request.params.feature ?? '', 'test');
      return { status: 200, jsonBody: { error: null } };
    } catch (error) {
      return { status: 200, jsonBody: { error: error instanceof Error ? error.message : String(error) } };
    }
  },
});

df.app.orchestration('testFails', function* () {
  yield* [];
  throw new Error('orchestrator broke on purpose');
});

df.app.orchestration('testCrash', function* (context) {
  const run = context.df.getInput<string>();
  yield context.df.callActivity('testRecord', { key: `${run}-1` });
  yield context.df.callActivity('testRecord', { key: `${run}-2`, delayMs: 2500 });
  yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 2500));
  yield context.df.callActivity('testRecord', { key: `${run}-3` });
  return 'done';
});

// A starter like the product's: the real df.getClient and createCheckStatusResponse.
app.http('testStartOrchestration', {
  methods: ['POST'],
  route: 'test/orchestrators/{name}/{instanceId?}',
  authLevel: 'anonymous',
  extraInputs: [df.input.durableClient()],
  handler: async (request: HttpRequest, context: InvocationContext) => {
    const client = df.getClient(context);
    const body = await request.text();
    const instanceId = await client.startNew(request.params.name ?? '', {
      ...(body ? { input: JSON.parse(body) as unknown } : {}),
      ...(request.params.instanceId ? { instanceId: request.params.instanceId } : {}),
    });
    return client.createCheckStatusResponse(request, instanceId);
  },
});

// Blob trigger and timer for the local host's own tests.
app.storageBlob('testBlobEcho', {
  path: 'test-uploads/{tenant}/{name}',
  connection: 'AzureWebJobsStorage',
  handler: (blob: unknown, context: InvocationContext) => {
    const { tenant, name } = context.triggerMetadata as { tenant: string; name: string };
    log(`blob ${tenant} ${name} ${(blob as Buffer).length}`);
    if (name.includes('fail')) throw new Error('this blob always fails');
  },
});

app.timer('testTicker', {
  schedule: '*/3 * * * * *',
  handler: (timer) => {
    log(`tick ${timer.isPastDue} ${timer.scheduleStatus?.last ?? ''}`);
  },
});
