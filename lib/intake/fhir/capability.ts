/** What the FHIR endpoint supports, as a CapabilityStatement (R4); built once, it changes with the code only. */
export function capabilityStatement(): Record<string, unknown> {
  const read = (type: string, searchParams: { name: string; type: string; documentation: string }[] = []) => ({
    type,
    interaction: [{ code: 'read' }, ...(searchParams.length > 0 ? [{ code: 'search-type' }] : [])],
    ...(searchParams.length > 0 ? { searchParam: searchParams } : {}),
  });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-11-30',
    kind: 'instance',
    software: { name: 'LabVault' },
    implementation: { description: 'LabVault order intake (FHIR R4)' },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    rest: [
      {
        mode: 'server',
        documentation:
          'One lab order per transaction Bundle (Patient, Practitioner or PractitionerRole with Organization, ServiceRequests sharing one placer number, Specimens; Task and Encounter accepted). Authorization: a LabVault API key or bearer token with orders:create / orders:read.',
        security: { description: 'Authorization: ApiKey <key> or Bearer <access token>' },
        interaction: [{ code: 'transaction' }],
        resource: [
          read('ServiceRequest', [
            {
              name: 'identifier',
              type: 'token',
              documentation: 'The placer order number: urn:labvault:external-id|<value>, or the value alone',
            },
          ]),
          read('Task'),
        ],
      },
    ],
  };
}
