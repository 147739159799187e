// The layers of LabVault and the one direction their imports point (docs/architecture.md draws
// them). `npm run lint` runs this; an arrow the wrong way fails CI.
//
//   functions/, orchestrations/          triggers: translate HTTP, timers, events to domain calls
//   lib/services.ts, lib/operations.ts   composition: builds the services, lists the operations
//   lib/http/                            the HTTP pipeline, problem mapping, OpenAPI generator
//   lib/<domain>/                        the domains; each owns its storage; api.ts is its HTTP contract
//   lib/ foundation                      errors, fields, config, storage, crypto, net, observability
//   local-host/                          the embedded Functions host (never deployed), knows no domain
const DOMAINS = '(approvals|audit|backups|breaches|exports|identity|images|intake|orders|platform|retention|tenants)';
/** A domain's HTTP contract: its api.ts, or the files of its api/ folder. */
const CONTRACTS = `^lib/${DOMAINS}/api(\\.ts$|/)`;
const FOUNDATION = '^lib/(errors|fields|config)\\.ts$|^lib/(storage|crypto|net|observability)/';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Modules of the project form no cycle.',
      severity: 'error',
      from: { path: '^(lib|functions|orchestrations|local-host|scripts)/' },
      to: { circular: true },
    },
    {
      name: 'foundation-stays-below',
      comment:
        'The foundation (errors, fields, config, storage, crypto, net, observability) imports no domain, no HTTP, nothing above.',
      severity: 'error',
      from: { path: FOUNDATION },
      to: {
        path: `^lib/${DOMAINS}/|^lib/http/|^lib/(services|operations)\\.ts$|^(functions|orchestrations|local-host|scripts)/`,
      },
    },
    {
      name: 'domains-know-no-http',
      comment:
        'Domain code throws domain errors (lib/errors.ts) and never imports lib/http; only a domain contract (api.ts) describes HTTP.',
      severity: 'error',
      from: { path: `^lib/${DOMAINS}/`, pathNot: CONTRACTS },
      to: { path: '^lib/http/' },
    },
    {
      name: 'domains-do-not-import-contracts',
      comment:
        'Domain code uses record schemas (schemas.ts), never an HTTP contract: the contracts sit on top of the domains.',
      severity: 'error',
      from: { path: `^lib/${DOMAINS}/`, pathNot: CONTRACTS },
      to: { path: CONTRACTS },
    },
    {
      name: 'contracts-use-the-operation-model-only',
      comment:
        "A domain's contract (api.ts) defines operations; it does not reach into the pipeline or the OpenAPI generator.",
      severity: 'error',
      from: { path: CONTRACTS },
      to: { path: '^lib/http/', pathNot: '^lib/http/(operation|schemas)\\.ts$' },
    },
    {
      name: 'http-does-not-list-the-domains',
      comment:
        'lib/http is generic: the registry of operations (lib/operations.ts) sits above it and above the domains.',
      severity: 'error',
      from: { path: '^lib/http/' },
      to: { path: `${CONTRACTS}|^lib/(services|operations)\\.ts$` },
    },
    {
      name: 'lib-does-not-import-its-callers',
      comment: 'Nothing in lib imports the triggers, the local host or the scripts.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(functions|orchestrations|local-host|scripts|tests)/' },
    },
    {
      name: 'domains-do-not-build-services',
      comment: 'Services get their dependencies passed in; only the composition root (lib/services.ts) builds them.',
      severity: 'error',
      from: { path: `^lib/${DOMAINS}/` },
      to: { path: '^lib/(services|operations)\\.ts$' },
    },
    {
      name: 'local-host-knows-no-app',
      comment:
        'The embedded host runs whatever entry it is handed: it imports no domain, no function and no composition root.',
      severity: 'error',
      from: { path: '^local-host/' },
      to: { path: `^lib/${DOMAINS}/|^lib/http/|^lib/(services|operations)\\.ts$|^(functions|orchestrations|scripts)/` },
    },
    {
      name: 'deployed-code-does-not-need-the-local-host',
      comment: 'What is deployed (functions, orchestrations, lib) never imports the local host or the scripts.',
      severity: 'error',
      from: { path: '^(functions|orchestrations|lib)/' },
      to: { path: '^(local-host|scripts|tests)/' },
    },
    {
      name: 'orchestrations-are-not-http',
      comment: 'Orchestrations and activities call domains; they do not go through HTTP functions.',
      severity: 'error',
      from: { path: '^orchestrations/' },
      to: { path: '^functions/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|coverage)/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
