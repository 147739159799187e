// LabVault on Azure: storage (RA-GZRS), Key Vault, Function App on Flex Consumption (Node 22),
// monitoring and Defender, in the style of the Azure-Samples quickstarts. One resource token names
// everything. Deploy: see README "Deploying to Azure".
targetScope = 'resourceGroup'

@description('Short name of the environment, e.g. prod or staging.')
@minLength(2)
@maxLength(12)
param environmentName string

@description('EU regions only: health data of statutory-insurance care stays in the EU (§393 SGB V).')
@allowed([
  'germanywestcentral'
  'germanynorth'
  'westeurope'
  'northeurope'
  'francecentral'
  'swedencentral'
  'switzerlandnorth'
  'italynorth'
  'polandcentral'
  'spaincentral'
])
param location string = 'germanywestcentral'

@description('Key Vault soft-delete retention (7-90 days). A crypto-shred is final only when this window has passed: deletion certificates state that date.')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteDays int = 90

@description('Days blobs and containers stay recoverable after deletion (soft delete).')
@minValue(7)
@maxValue(365)
param blobSoftDeleteDays int = 14

@description('Days the audit archive and backups stay immutable (WORM). They hold only encrypted data.')
@minValue(1)
param immutabilityDays int = 3650

@description('Encrypt storage with a customer-managed key from the Key Vault (else Microsoft-managed keys; infrastructure encryption is on either way).')
param useCustomerManagedKey bool = false

@description('Optional IP ranges allowed to reach the Key Vault; empty allows Azure services and the app only through RBAC.')
param keyVaultAllowedIpRanges array = []

@description('Maximum instances of the Flex Consumption plan.')
param maximumInstanceCount int = 40

@description('Second deployment, after publishing the code: subscribe the image trigger to upload events.')
param deployEventSubscription bool = false

@description('DEVELOPMENT ONLY. True puts storage and Key Vault on the public internet (no VNet, no private endpoints). Never for a deployment holding patient data: the deployment outputs a warning when set.')
param allowPublicNetworkAccess bool = false

@description('The durable backend: azureStorage (default; about 100 fan-out activities/s per instance) or durableTaskScheduler (about 1,400 work items/s for one worker; see docs/architecture.md).')
@allowed(['azureStorage', 'durableTaskScheduler'])
param durableBackend string = 'azureStorage'

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName, application: 'labvault' }

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    softDeleteRetentionInDays: keyVaultSoftDeleteDays
    allowedIpRanges: keyVaultAllowedIpRanges
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    allowPublicNetworkAccess: allowPublicNetworkAccess
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    blobSoftDeleteDays: blobSoftDeleteDays
    immutabilityDays: immutabilityDays
    useCustomerManagedKey: useCustomerManagedKey
    keyVaultUri: keyVault.outputs.uri
    keyVaultName: keyVault.outputs.name
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    allowPublicNetworkAccess: allowPublicNetworkAccess
  }
}

module network 'modules/network.bicep' = if (!allowPublicNetworkAccess) {
  name: 'network'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module scheduler 'modules/scheduler.bicep' = if (durableBackend == 'durableTaskScheduler') {
  name: 'scheduler'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    taskHubName: 'labvault'
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    keyVaultUri: keyVault.outputs.uri
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    maximumInstanceCount: maximumInstanceCount
    keyVaultSoftDeleteDays: keyVaultSoftDeleteDays
    deployEventSubscription: deployEventSubscription
    appSubnetId: allowPublicNetworkAccess ? '' : network.outputs.appSubnetId
    durableBackend: durableBackend
    schedulerName: durableBackend == 'durableTaskScheduler' ? scheduler.outputs.name : ''
    schedulerEndpoint: durableBackend == 'durableTaskScheduler' ? scheduler.outputs.endpoint : ''
    taskHubName: 'labvault'
  }
}

module defender 'modules/defender.bicep' = {
  name: 'defender'
  scope: subscription()
}

output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output WARNING string = allowPublicNetworkAccess
  ? 'PUBLIC NETWORK ACCESS IS ON: storage and Key Vault are reachable from the internet. Development only; never with patient data.'
  : ''
