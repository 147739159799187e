import { app, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import {
  cancelSubjectErasure,
  confirmSubjectErasure,
  createSubjectRequest,
  downloadSubjectAccessArchive,
  getSubjectRequest,
  listSubjectRequests,
  liftSubjectRestriction,
  retrySubjectErasure,
  searchSubject,
} from '../lib/subjects/api.js';
import type { SubjectRequest } from '../lib/subjects/subject-requests.js';
import { subjectErasureInstanceId } from '../orchestrations/instance-ids.js';
import { startOrchestration, terminate } from './durable.js';
import { forbidden, notFound } from '../lib/errors.js';
import { archiveResponse, confirmPerson, isPerson, startExportOrchestration } from './exports.js';
import { attemptOf, handle, metaOf } from './http.js';

const client = [df.input.durableClient()];

/** Starts the request's erasure run (under the request's own instance id) and answers 202 with the request. */
async function startErasure(invocation: InvocationContext, tenant: string, request: SubjectRequest) {
  await startOrchestration(invocation, 'subjectErasure', subjectErasureInstanceId(tenant, request.id), {
    tenant,
    requestId: request.id,
  });
  return { status: 202, headers: { Location: `/api/subject-requests/${request.id}` }, body: request };
}

app.http(
  searchSubject.id,
  handle(searchSubject, async (ctx, { subjects }) => ({
    status: 200,
    body: await subjects.inventory(ctx.tenant, ctx.body.patientId, metaOf(ctx)),
  })),
);

app.http(
  createSubjectRequest.id,
  handle(
    createSubjectRequest,
    async (ctx, { subjects, exports }) => {
      const meta = metaOf(ctx);
      const input = ctx.body;
      if (input.type === 'access') {
        const request = await subjects.requestAccess(ctx.tenant, input.patientId, input.format, ctx.principal.id, meta);
        // The same orchestration as a tenant export; the export record says whose records to take.
        await startExportOrchestration(
          ctx.invocation,
          exports,
          ctx.tenant,
          { id: request.exportId as string, format: input.format, purpose: 'subject-access' },
          meta,
        );
        return { status: 202, headers: { Location: `/api/subject-requests/${request.id}` }, body: request };
      }
      const request =
        input.type === 'erasure'
          ? await subjects.requestErasure(ctx.tenant, input.patientId, ctx.principal.id, meta)
          : await subjects.restrict(ctx.tenant, input.patientId, ctx.principal.id, meta);
      return {
        status: input.type === 'erasure' ? 202 : 201,
        headers: { Location: `/api/subject-requests/${request.id}` },
        body: request,
      };
    },
    { extraInputs: client },
  ),
);

app.http(
  listSubjectRequests.id,
  handle(listSubjectRequests, async (ctx, { subjects }) => ({
    status: 200,
    body: { items: await subjects.list(ctx.tenant) },
  })),
);

app.http(
  getSubjectRequest.id,
  handle(getSubjectRequest, async (ctx, { subjects }) => ({
    status: 200,
    body: await subjects.get(ctx.tenant, ctx.params.id),
  })),
);

app.http(
  confirmSubjectErasure.id,
  handle(
    confirmSubjectErasure,
    async (ctx, { auth, subjects }) => {
      // The password first: a wrong one (or a token without it) changes nothing.
      await auth.confirmPassword(ctx.principal, ctx.body.currentPassword, attemptOf(ctx));
      const request = await subjects.confirmErasure(ctx.tenant, ctx.params.id, ctx.principal.id, metaOf(ctx));
      return startErasure(ctx.invocation, ctx.tenant, request);
    },
    { extraInputs: client },
  ),
);

app.http(
  cancelSubjectErasure.id,
  handle(
    cancelSubjectErasure,
    async (ctx, { subjects }) => {
      const request = await subjects.cancelErasure(ctx.tenant, ctx.params.id, ctx.principal.id, metaOf(ctx));
      // The state row decides in any case (the orchestration checks it after its timer); this ends the wait.
      await terminate(ctx.invocation, subjectErasureInstanceId(ctx.tenant, request.id), 'cancelled');
      return { status: 200, body: request };
    },
    { extraInputs: client },
  ),
);

app.http(
  retrySubjectErasure.id,
  handle(
    retrySubjectErasure,
    async (ctx, { auth, subjects }) => {
      await auth.confirmPassword(ctx.principal, ctx.body.currentPassword, attemptOf(ctx));
      const request = await subjects.retryErasure(ctx.tenant, ctx.params.id, ctx.principal.id, metaOf(ctx));
      // The failed instance has ended, so its id starts again; its first step takes the export lock.
      return startErasure(ctx.invocation, ctx.tenant, request);
    },
    { extraInputs: client },
  ),
);

app.http(
  liftSubjectRestriction.id,
  handle(liftSubjectRestriction, async (ctx, { subjects }) => ({
    status: 200,
    body: await subjects.lift(ctx.tenant, ctx.params.id, ctx.principal.id, metaOf(ctx)),
  })),
);

app.http(
  downloadSubjectAccessArchive.id,
  handle(downloadSubjectAccessArchive, async (ctx, { auth, exports, subjects }) => {
    const request = await subjects.get(ctx.tenant, ctx.params.id);
    // The request carries its export's archive (read live) and the requester, who is the export's too.
    if (!request.exportId || !request.archive || request.requestedBy !== ctx.principal.id)
      throw notFound('No archive of this request is available to you.');
    if (!isPerson(ctx.principal))
      throw forbidden("An access request's archive is for the person who made it, with their password.");
    await confirmPerson(ctx, auth, ctx.body.currentPassword, "takes a subject's archive");
    return archiveResponse(exports, ctx.tenant, request.exportId, ctx.principal, metaOf(ctx));
  }),
);
