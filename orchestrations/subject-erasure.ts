// A data subject's erasure once confirmed by a second person: wait out the cancellation window,
// check again (a legal hold placed meanwhile wins), erase, verify, certify; a step failing past
// every retry marks the request failed and gives the tenant's export lock back. Inputs and outputs
// are ids and counts only; the subject is named by the request id, never by an identifier.
import type { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { reclaimExportLock } from './export-lock.js';
import { subjectErasureInstanceId } from './instance-ids.js';
import { storageRetry } from './retry.js';
import type { ErasureFacts } from '../lib/subjects/subject-requests.js';
import { getServices } from '../lib/services.js';

interface ErasureInput {
  tenant: string;
  requestId: string;
}

const system = (input: ErasureInput) => ({
  actor: { type: 'system' as const, id: 'subject-erasure' },
  correlationId: subjectErasureInstanceId(input.tenant, input.requestId),
});

df.app.activity('subjectErasureBegin', {
  extraInputs: [df.input.durableClient()],
  handler: async (input: ErasureInput, context: InvocationContext) => {
    const services = await getServices();
    const begun = await services.subjects.beginErasure(input.tenant, input.requestId, system(input));
    // Waiting for the lock: unless its holder's run has ended without finishing (then it is given
    // back and the erasure begins now), the orchestration looks again a little later.
    if (begun.proceed || !begun.waitingForExportLock) return begun;
    if (!(await reclaimExportLock(df.getClient(context), services, input.tenant, system(input)))) return begun;
    return services.subjects.beginErasure(input.tenant, input.requestId, system(input));
  },
});
df.app.activity('subjectErasureErase', {
  handler: async (input: ErasureInput) =>
    (await getServices()).subjects.erase(input.tenant, input.requestId, system(input)),
});
df.app.activity('subjectErasureVerify', {
  handler: async (input: ErasureInput & { orderIds: string[] }) =>
    (await getServices()).subjects.verifyErasure(input.tenant, input.requestId, input.orderIds),
});
df.app.activity('subjectErasureCertify', {
  handler: async (
    input: ErasureInput & {
      facts: Omit<ErasureFacts, 'orderIds'>;
      verification: Awaited<ReturnType<Awaited<ReturnType<typeof getServices>>['subjects']['verifyErasure']>>;
    },
  ) => {
    const done = await (
      await getServices()
    ).subjects.certifyErasure(input.tenant, input.requestId, input.facts, input.verification, system(input));
    const verification = done.certificate?.certificate.verification as { passed?: boolean } | undefined;
    return { status: done.status, passed: verification?.passed === true };
  },
});

df.app.activity('subjectErasureFail', {
  handler: async (input: ErasureInput) => {
    await (await getServices()).subjects.failErasure(input.tenant, input.requestId, system(input));
  },
});

df.app.orchestration('subjectErasure', function* (context) {
  const input = context.df.getInput<ErasureInput>();
  try {
    for (;;) {
      const begun = (yield context.df.callActivityWithRetry('subjectErasureBegin', storageRetry(), input)) as
        { proceed: true } | { proceed: false; status: string; executeAt?: string };
      if (begun.proceed) break;
      if (!begun.executeAt) return { status: begun.status }; // cancelled or refused meanwhile
      context.df.setCustomStatus({ phase: 'window', until: begun.executeAt });
      yield context.df.createTimer(new Date(begun.executeAt));
    }
    context.df.setCustomStatus({ phase: 'erasing' });
    const { orderIds, ...facts } = (yield context.df.callActivityWithRetry(
      'subjectErasureErase',
      storageRetry(),
      input,
    )) as ErasureFacts;
    context.df.setCustomStatus({ phase: 'verification' });
    const verification = yield context.df.callActivityWithRetry('subjectErasureVerify', storageRetry(), {
      ...input,
      orderIds,
    });
    context.df.setCustomStatus({ phase: 'certificate' });
    return yield context.df.callActivityWithRetry('subjectErasureCertify', storageRetry(), {
      ...input,
      facts,
      verification,
    });
  } catch {
    // A step failed past every retry: the request says `failed` and the tenant's export lock is
    // given back (POST /subject-requests/{id}/retry runs it again). The error stays out of the
    // output: its text is the storage's, and the output is shown to operators.
    context.df.setCustomStatus({ phase: 'failed' });
    yield context.df.callActivityWithRetry('subjectErasureFail', storageRetry(), input);
    return { status: 'failed' };
  }
});
