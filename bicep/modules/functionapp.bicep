param location string
param tags object
param resourceToken string
param storageAccountName string
param keyVaultName string
param keyVaultUri string
param applicationInsightsConnectionString string
param logAnalyticsWorkspaceId string
param maximumInstanceCount int
param keyVaultSoftDeleteDays int

@description('Second pass, after the code is published: the blob extension key exists only then.')
param deployEventSubscription bool = false

@description('azureStorage: the Durable Functions Azure Storage provider on the app\'s account; durableTaskScheduler: the scheduler named below.')
@allowed(['azureStorage', 'durableTaskScheduler'])
param durableBackend string = 'azureStorage'
param schedulerName string = ''
param schedulerEndpoint string = ''
param taskHubName string = 'labvault'

@description('The subnet of the app\'s VNet integration (empty: none, a public development deployment).')
param appSubnetId string = ''

var useScheduler = durableBackend == 'durableTaskScheduler'
// host.json names the Azure Storage provider; on the scheduler these app settings override it.
var schedulerSettings = useScheduler
  ? [
      { name: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING', value: 'Endpoint=${schedulerEndpoint};Authentication=ManagedIdentity' }
      { name: 'AzureFunctionsJobHost__extensions__durableTask__storageProvider__type', value: 'azureManaged' }
      { name: 'AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName', value: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING' }
    ]
  : []

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-${resourceToken}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Outbound to storage and Key Vault through the VNet, to their private endpoints.
    virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId
    vnetRouteAllEnabled: !empty(appSubnetId)
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}app-package'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: 2048 }
      runtime: { name: 'node', version: '22' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(schedulerSettings, [
        // Identity-based connections: no connection strings, no account keys.
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
        { name: 'AzureWebJobsStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
        { name: 'AzureWebJobsStorage__tableServiceUri', value: storage.properties.primaryEndpoints.table }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: applicationInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD' }
        // Read by glibc at process start: two malloc arenas instead of one per libvips thread (docs/performance.md).
        { name: 'MALLOC_ARENA_MAX', value: '2' }
        // The worker's V8 heap limit, three quarters of instanceMemoryMB: below 2 GB V8 lets at most
        // 1.3–2 × the live heap accumulate as garbage, not 4 ×, so a long export's peak stays near a short one's.
        { name: 'languageWorkers__node__arguments', value: '--max-old-space-size=1536' }
        // Every setting of lib/config.ts:
        { name: 'LABVAULT_ENVIRONMENT', value: 'production' }
        // Empty: the RA-GZRS secondary is derived from the account name ("{account}-secondary").
        { name: 'LABVAULT_STORAGE_SECONDARY', value: '' }
        { name: 'LABVAULT_KEY_PROVIDER', value: 'keyvault' }
        { name: 'LABVAULT_KEY_VAULT_URL', value: keyVaultUri }
        { name: 'LABVAULT_KEY_VAULT_SOFT_DELETE_DAYS', value: string(keyVaultSoftDeleteDays) }
        { name: 'LABVAULT_DATA_DIR', value: '/tmp/labvault' }
        { name: 'LABVAULT_TASK_HUB', value: taskHubName }
        { name: 'LABVAULT_BREACH_PROCESSOR_DEADLINE_HOURS', value: '24' }
        { name: 'LABVAULT_BREACH_REMINDER_HOURS', value: '12,24' }
        { name: 'LABVAULT_BREACH_ESCALATION_HOURS', value: '47' }
        { name: 'LABVAULT_BREACH_ANALYSIS_REMINDER_HOURS', value: '24' }
        { name: 'LABVAULT_BREACH_CONTACT', value: 'security-officer@labvault.example' }
        { name: 'LABVAULT_WEBHOOK_FIRST_RETRY_SECONDS', value: '10' }
        { name: 'LABVAULT_TERMINATION_NOTICE_DAYS', value: '30' }
        { name: 'LABVAULT_EXPORT_LINK_HOURS', value: '24' }
        { name: 'LABVAULT_APPROVAL_HOURS', value: '24' }
        { name: 'LABVAULT_SUBJECT_ERASURE_DELAY_SECONDS', value: '86400' }
        { name: 'LABVAULT_SUBPROCESSOR_OBJECTION_DAYS', value: '30' }
        { name: 'LABVAULT_REGION', value: location }
        { name: 'LABVAULT_ANOMALY_WINDOW_SECONDS', value: '3600' }
        { name: 'LABVAULT_ANOMALY_BASELINE_WINDOWS', value: '168' }
        { name: 'LABVAULT_ANOMALY_READS_MIN', value: '500' }
        { name: 'LABVAULT_ANOMALY_READS_FACTOR', value: '10' }
        { name: 'LABVAULT_ANOMALY_EXPORTS', value: '3' }
        { name: 'LABVAULT_ANOMALY_REFUSALS', value: '50' }
        { name: 'LABVAULT_ANOMALY_GRANT_READS', value: '100' }
        { name: 'LABVAULT_ANOMALY_CYCLE_WINDOWS', value: '24' }
        { name: 'LABVAULT_ANOMALY_OFFHOURS_READS', value: '20' }
        // Empty: the platform's front end is the only proxy, and it appends the client address itself.
        { name: 'LABVAULT_TRUSTED_PROXIES', value: '' }
        { name: 'LABVAULT_WEBHOOK_ALLOW_LOOPBACK', value: 'false' }
        { name: 'LABVAULT_OUTBOUND_ALLOWED_PORTS', value: '443,8443' }
      ])
    }
  }
}

// Least privilege for the app's identity: data-plane roles on its own account and vault only.
var roles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // blob trigger receipts, user delegation SAS
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // tenant keys: create, rotate, delete, purge
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in ['blobDataOwner', 'queueDataContributor', 'tableDataContributor']: {
  name: guid(storage.id, app.id, role)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles[role])
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource vaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, app.id, 'keyVaultSecretsOfficer')
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource scheduler 'Microsoft.DurableTask/schedulers@2024-10-01-preview' existing = if (useScheduler) {
  name: useScheduler ? schedulerName : 'none'
}

resource schedulerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useScheduler) {
  name: guid(resourceGroup().id, app.id, 'durable-task-data-contributor')
  scope: scheduler
  properties: {
    // Durable Task Data Contributor
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0ad04412-c4d5-4796-b79c-f76d14c8d402')
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Flex Consumption takes blob triggers from Event Grid: uploads of specimen images.
resource uploadsTopic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: 'evgt-uploads-${resourceToken}'
  location: location
  tags: tags
  properties: { source: storage.id, topicType: 'Microsoft.Storage.StorageAccounts' }
}

resource uploadsSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = if (deployEventSubscription) {
  parent: uploadsTopic
  name: 'specimen-uploads-to-function'
  properties: {
    // An Event Grid trigger function: the event carries the blob's URL and length, not its bytes
    // (a blob trigger would have the host download every upload, however large, before the code runs).
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${app.id}/functions/processSpecimenImage'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: ['Microsoft.Storage.BlobCreated']
      subjectBeginsWith: '/blobServices/default/containers/specimen-uploads/'
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: app
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [{ category: 'FunctionAppLogs', enabled: true }]
    metrics: [{ category: 'AllMetrics', enabled: true }]
  }
}

output name string = app.name
