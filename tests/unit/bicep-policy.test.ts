import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Policy as code over the Bicep files, as text: the Bicep CLI cannot be installed here. Each
 * check names the property it guards; weakening one (e.g. LRS, TLS 1.0, public access) fails.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const read = (file: string): string => readFileSync(join(ROOT, 'bicep', file), 'utf8').replace(/^\s*\/\/.*$/gm, '');
const main = read('main.bicep');
const storage = read('modules/storage.bicep');
const keyVault = read('modules/keyvault.bicep');
const functionApp = read('modules/functionapp.bicep');
const monitoring = read('modules/monitoring.bicep');
const defender = read('modules/defender.bicep');
const parameters = JSON.parse(readFileSync(join(ROOT, 'bicep', 'main.parameters.json'), 'utf8')) as {
  parameters: Record<string, { value: unknown }>;
};

const EU = [
  'germanywestcentral',
  'germanynorth',
  'westeurope',
  'northeurope',
  'francecentral',
  'swedencentral',
  'switzerlandnorth',
  'italynorth',
  'polandcentral',
  'spaincentral',
];

function check(name: string, text: string, pattern: RegExp): void {
  it(name, () => {
    expect(text, name).toMatch(pattern);
  });
}

describe('storage account', () => {
  check('kind StorageV2', storage, /kind: 'StorageV2'/);
  check('sku Standard_RAGZRS (geo-redundant, readable secondary)', storage, /sku: \{ name: 'Standard_RAGZRS' \}/);
  check('minimumTlsVersion TLS1_2', storage, /minimumTlsVersion: 'TLS1_2'/);
  check('supportsHttpsTrafficOnly true', storage, /supportsHttpsTrafficOnly: true/);
  check('allowBlobPublicAccess false', storage, /allowBlobPublicAccess: false/);
  check('allowSharedKeyAccess false (identity only)', storage, /allowSharedKeyAccess: false/);
  check('isVersioningEnabled true', storage, /isVersioningEnabled: true/);
  check('blob soft delete enabled', storage, /deleteRetentionPolicy: \{ enabled: true, days: blobSoftDeleteDays \}/);
  check(
    'container soft delete enabled',
    storage,
    /containerDeleteRetentionPolicy: \{ enabled: true, days: blobSoftDeleteDays \}/,
  );
  check('change feed enabled', storage, /changeFeed: \{ enabled: true/);
  check('point-in-time restore enabled', storage, /restorePolicy: \{ enabled: true/);
  check('requireInfrastructureEncryption true', storage, /requireInfrastructureEncryption: true/);
  check('customer-managed key option', storage, /keySource: useCustomerManagedKey \? 'Microsoft\.Keyvault'/);
  check(
    'lifecycle rule: quarantine after 7 days',
    storage,
    /prefixMatch: \['quarantine\/'\][\s\S]*?daysAfterCreationGreaterThan: 7/,
  );
  check('lifecycle rule: exports', storage, /prefixMatch: \['exports\/'\]/);
  check(
    'diagnostic settings for blob, table and queue',
    storage,
    /scope: blobService[\s\S]*scope: tableService[\s\S]*scope: queueService/,
  );
  check(
    'Defender for Storage with malware scanning',
    storage,
    /defenderForStorageSettings[\s\S]*malwareScanning: \{ onUpload: \{ isEnabled: true/,
  );

  it('immutability (WORM) only on the audit archive and backups, never on personal-data containers', () => {
    const immutable = /var immutableContainers = \[([^\]]*)\]/.exec(storage)?.[1] ?? '';
    expect(immutable.replace(/\s/g, '')).toBe("'audit-archive','backups'");
    const data = /var dataContainers = \[([^\]]*)\]/.exec(storage)?.[1] ?? '';
    for (const c of ['specimen-uploads', 'specimen-images', 'quarantine', 'exports']) expect(data).toContain(`'${c}'`);
    expect(storage).toMatch(
      /immutabilityPolicies[\s\S]*for \(name, i\) in immutableContainers[\s\S]*immutabilityPeriodSinceCreationInDays: immutabilityDays/,
    );
  });
});

describe('key vault', () => {
  check('enableRbacAuthorization true', keyVault, /enableRbacAuthorization: true/);
  check('enableSoftDelete true', keyVault, /enableSoftDelete: true/);
  check(
    'softDeleteRetentionInDays from the stated parameter',
    keyVault,
    /softDeleteRetentionInDays: softDeleteRetentionInDays/,
  );
  check('enablePurgeProtection true', keyVault, /enablePurgeProtection: true/);
  check('network rules option', keyVault, /networkAcls: \{[\s\S]*ipRules: \[for range in allowedIpRanges/);
  check('diagnostic settings', keyVault, /diagnosticSettings[\s\S]*categoryGroup: 'audit'/);
  check(
    'soft-delete retention bounded 7..90 with 90 default',
    main,
    /@minValue\(7\)\s*@maxValue\(90\)\s*param keyVaultSoftDeleteDays int = 90/,
  );
});

describe('function app', () => {
  check('Flex Consumption plan', functionApp, /sku: \{ tier: 'FlexConsumption', name: 'FC1' \}/);
  check('Node 22 runtime', functionApp, /runtime: \{ name: 'node', version: '22' \}/);
  check('system-assigned identity', functionApp, /identity: \{ type: 'SystemAssigned' \}/);
  check('httpsOnly', functionApp, /httpsOnly: true/);
  check(
    'identity-based AzureWebJobsStorage__* settings',
    functionApp,
    /AzureWebJobsStorage__accountName[\s\S]*AzureWebJobsStorage__credential', value: 'managedidentity'/,
  );
  check(
    'blob, queue and table data roles',
    functionApp,
    /blobDataOwner[\s\S]*queueDataContributor[\s\S]*tableDataContributor/,
  );
  check('Key Vault secrets role on the vault only', functionApp, /scope: vault[\s\S]*roles\.keyVaultSecretsOfficer/);
  check(
    'Event Grid subscription of the image function (an Event Grid trigger: no download by the host)',
    functionApp,
    /eventSubscriptions[\s\S]*endpointType: 'AzureFunction'[\s\S]*\/functions\/processSpecimenImage'[\s\S]*subjectBeginsWith: '\/blobServices\/default\/containers\/specimen-uploads\/'/,
  );

  it('matches the local host: scripts/start-local.ts feeds the same function from the same container', () => {
    const start = readFileSync(join(ROOT, 'scripts/start-local.ts'), 'utf8');
    expect(start).toContain("{ functionName: 'processSpecimenImage', container: 'specimen-uploads' }");
    expect(functionApp).toContain("subjectBeginsWith: '/blobServices/default/containers/specimen-uploads/'");
  });
  check('diagnostic settings', functionApp, /diagnosticSettings[\s\S]*FunctionAppLogs/);

  it('has no connection string or account key', () => {
    expect(functionApp).not.toMatch(/name: 'AzureWebJobsStorage', value/);
    expect(functionApp).not.toMatch(/AccountKey=|listKeys\(storage/);
  });

  it('starts the worker as the local host starts its Node: the same arguments and allocator setting', async () => {
    // What the benchmarks and tests measure is what Azure runs (local-host/process-env.ts says why each).
    const { HOST_NODE_ARGUMENTS, HOST_PROCESS_ENV } = await import('../../local-host/process-env.js');
    expect(functionApp).toContain(
      `{ name: 'languageWorkers__node__arguments', value: '${HOST_NODE_ARGUMENTS.join(' ')}' }`,
    );
    expect(HOST_NODE_ARGUMENTS).toContain('--max-old-space-size=1536');
    expect(functionApp).toContain(`{ name: 'MALLOC_ARENA_MAX', value: '${HOST_PROCESS_ENV.MALLOC_ARENA_MAX ?? ''}' }`);
  });

  it('sets every setting of lib/config.ts', () => {
    const config = readFileSync(join(ROOT, 'lib/config.ts'), 'utf8');
    const settings = [...config.matchAll(/^\s{4}(LABVAULT_[A-Z_]+):/gm)].map((m) => m[1]);
    expect(settings.length).toBeGreaterThan(5);
    for (const setting of settings) expect(functionApp, setting).toContain(`name: '${setting}'`);
    expect(functionApp).toContain("{ name: 'LABVAULT_ENVIRONMENT', value: 'production' }");
    expect(functionApp).toContain("{ name: 'LABVAULT_KEY_PROVIDER', value: 'keyvault' }");
  });
});

describe('monitoring, Defender and location', () => {
  check('Log Analytics workspace', monitoring, /Microsoft\.OperationalInsights\/workspaces/);
  check(
    'Application Insights on the workspace',
    monitoring,
    /Microsoft\.Insights\/components[\s\S]*WorkspaceResourceId: workspace\.id/,
  );
  check('Defender for Storage plan', defender, /name: 'StorageAccounts'[\s\S]*pricingTier: 'Standard'/);
  check('Defender for Key Vault plan', defender, /name: 'KeyVaults'[\s\S]*pricingTier: 'Standard'/);
  check('one resource token names everything', main, /var resourceToken = toLower\(uniqueString\(/);

  it('allows EU regions only, germanywestcentral by default', () => {
    const allowed = /@allowed\(\[([\s\S]*?)\]\)\s*param location string = 'germanywestcentral'/.exec(main)?.[1] ?? '';
    const regions = [...allowed.matchAll(/'([a-z]+)'/g)].map((m) => m[1]);
    expect(regions.length).toBeGreaterThan(0);
    for (const region of regions) expect(EU).toContain(region);
    expect(parameters.parameters.location?.value).toBe('germanywestcentral');
  });
});

const network = read('modules/network.bicep');
const scheduler = read('modules/scheduler.bicep');

/**
 * The template as deployed with `allowPublicNetworkAccess` set to `value`: each
 * `allowPublicNetworkAccess ? a : b` resolved, and each module guarded by it kept or dropped.
 */
function shape(text: string, value: boolean): string {
  return text.replace(
    /allowPublicNetworkAccess \? ('[^']*') : ('[^']*')/g,
    (_, whenPublic: string, whenPrivate: string) => (value ? whenPublic : whenPrivate),
  );
}

describe('private by default, public only for development', () => {
  it('defaults to private, and the production parameters keep it so', () => {
    expect(main).toMatch(/DEVELOPMENT ONLY[\s\S]*param allowPublicNetworkAccess bool = false/);
    expect(parameters.parameters.allowPublicNetworkAccess?.value).toBe(false);
    for (const module of [storage, keyVault]) expect(module).toMatch(/param allowPublicNetworkAccess bool = false/);
  });

  for (const [label, value, access] of [
    ['private (production)', false, 'Disabled'],
    ['public (development)', true, 'Enabled'],
  ] as const) {
    it(`${label}: storage and Key Vault publicNetworkAccess '${access}'`, () => {
      for (const module of [storage, keyVault]) {
        const settings = [...shape(module, value).matchAll(/publicNetworkAccess: ('[^']*'|\S+)/g)].map((m) => m[1]);
        expect(settings).toEqual([`'${access}'`]);
      }
      expect(shape(storage, value)).toContain(`defaultAction: ${value ? "'Allow'" : "'Deny'"}`);
    });
  }

  it('private: the network module deploys, and the app joins its subnet', () => {
    expect(main).toMatch(/module network 'modules\/network\.bicep' = if \(!allowPublicNetworkAccess\)/);
    expect(main).toMatch(/appSubnetId: allowPublicNetworkAccess \? '' : network\.outputs\.appSubnetId/);
    expect(functionApp).toMatch(/virtualNetworkSubnetId: empty\(appSubnetId\) \? null : appSubnetId/);
    expect(functionApp).toMatch(/vnetRouteAllEnabled: !empty\(appSubnetId\)/);
  });

  it('public: the deployment says so loudly', () => {
    expect(main).toMatch(/output WARNING string = allowPublicNetworkAccess\s*\?\s*'PUBLIC NETWORK ACCESS IS ON/);
  });

  check(
    'a subnet delegated to Flex Consumption (Microsoft.App/environments)',
    network,
    /delegations: \[\{ name: 'flex', properties: \{ serviceName: 'Microsoft\.App\/environments' \} \}\]/,
  );
  for (const service of ['blob', 'queue', 'table']) {
    check(
      `a private endpoint and DNS zone for ${service}`,
      network,
      new RegExp(
        `\\{ name: '${service}', groupId: '${service}', zone: 'privatelink\\.${service}\\.\\$\\{environment\\(\\)\\.suffixes\\.storage\\}', target: storage\\.id \\}`,
      ),
    );
  }
  check(
    'a private endpoint and DNS zone for Key Vault',
    network,
    /\{ name: 'vault', groupId: 'vault', zone: 'privatelink\.vaultcore\.azure\.net', target: vault\.id \}/,
  );
  check('DNS zones linked to the network', network, /virtualNetworkLinks[\s\S]*virtualNetwork: \{ id: vnet\.id \}/);
  check('DNS zone groups on the endpoints', network, /privateDnsZoneGroups[\s\S]*privateDnsZoneId: zones\[i\]\.id/);
  check(
    'network diagnostics to Log Analytics',
    network,
    /diagnosticSettings[\s\S]*workspaceId: logAnalyticsWorkspaceId/,
  );
});

describe('the durable backend', () => {
  it('is Azure Storage by default and the Durable Task Scheduler by choice', () => {
    expect(main).toMatch(
      /@allowed\(\['azureStorage', 'durableTaskScheduler'\]\)\s*param durableBackend string = 'azureStorage'/,
    );
    expect(parameters.parameters.durableBackend?.value).toBe('azureStorage');
    expect(main).toMatch(
      /module scheduler 'modules\/scheduler\.bicep' = if \(durableBackend == 'durableTaskScheduler'\)/,
    );
  });
  check('a scheduler and a task hub', scheduler, /Microsoft\.DurableTask\/schedulers@[\s\S]*schedulers\/taskHubs@/);
  check(
    'the app on the scheduler with its identity, no key',
    functionApp,
    /DURABLE_TASK_SCHEDULER_CONNECTION_STRING', value: 'Endpoint=\$\{schedulerEndpoint\};Authentication=ManagedIdentity'/,
  );
  check(
    "host.json's provider overridden to azureManaged",
    functionApp,
    /AzureFunctionsJobHost__extensions__durableTask__storageProvider__type', value: 'azureManaged'/,
  );
  check(
    'Durable Task Data Contributor on the scheduler only',
    functionApp,
    /scope: scheduler[\s\S]*0ad04412-c4d5-4796-b79c-f76d14c8d402/,
  );
  it('keeps host.json on the Azure Storage provider, so the default needs no setting', () => {
    const host = JSON.parse(readFileSync(join(ROOT, 'host.json'), 'utf8')) as {
      extensions: { durableTask: { storageProvider: { type: string } } };
    };
    expect(host.extensions.durableTask.storageProvider.type).toBe('AzureStorage');
  });
});
