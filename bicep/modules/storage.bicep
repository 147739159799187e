param location string
param tags object
param resourceToken string
param blobSoftDeleteDays int
param immutabilityDays int
param useCustomerManagedKey bool
param keyVaultUri string
param keyVaultName string
param logAnalyticsWorkspaceId string
@description('False in production: only private endpoints reach the account.')
param allowPublicNetworkAccess bool = false

// Containers with personal data hold only ciphertext written by the app (AES-256-GCM, tenant keys).
var dataContainers = ['specimen-uploads', 'specimen-images', 'quarantine', 'exports', 'app-package']
// WORM containers: never for unencrypted personal data.
var immutableContainers = ['audit-archive', 'backups']

resource cmkIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (useCustomerManagedKey) {
  name: 'id-storage-cmk-${resourceToken}'
  location: location
  tags: tags
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource cmkKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' = if (useCustomerManagedKey) {
  parent: vault
  name: 'storage-cmk'
  properties: { kty: 'RSA', keySize: 3072, rotationPolicy: { lifetimeActions: [{ action: { type: 'rotate' }, trigger: { timeBeforeExpiry: 'P30D' } }], attributes: { expiryTime: 'P1Y' } } }
}

resource cmkAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useCustomerManagedKey) {
  name: guid(vault.id, resourceToken, 'storage-cmk')
  scope: vault
  properties: {
    // Key Vault Crypto Service Encryption User
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'e147488a-f6f5-4113-8e2d-b22465e65bf6')
    principalId: useCustomerManagedKey ? cmkIdentity.properties.principalId : ''
    principalType: 'ServicePrincipal'
  }
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${resourceToken}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_RAGZRS' }
  identity: useCustomerManagedKey ? { type: 'UserAssigned', userAssignedIdentities: { '${cmkIdentity.id}': {} } } : { type: 'None' }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: allowPublicNetworkAccess ? 'Enabled' : 'Disabled'
    networkAcls: { defaultAction: allowPublicNetworkAccess ? 'Allow' : 'Deny', bypass: 'AzureServices' }
    encryption: {
      requireInfrastructureEncryption: true
      keySource: useCustomerManagedKey ? 'Microsoft.Keyvault' : 'Microsoft.Storage'
      keyvaultproperties: useCustomerManagedKey ? { keyvaulturi: keyVaultUri, keyname: 'storage-cmk' } : null
      identity: useCustomerManagedKey ? { userAssignedIdentity: cmkIdentity.id } : null
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
      }
    }
  }
  dependsOn: [cmkAccess, cmkKey]
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: true
    changeFeed: { enabled: true, retentionInDays: 30 }
    deleteRetentionPolicy: { enabled: true, days: blobSoftDeleteDays }
    containerDeleteRetentionPolicy: { enabled: true, days: blobSoftDeleteDays }
    // Point-in-time restore needs versioning, change feed and soft delete, and a shorter window.
    restorePolicy: { enabled: true, days: blobSoftDeleteDays - 1 }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for name in dataContainers: {
  parent: blobService
  name: name
  properties: { publicAccess: 'None' }
}]

resource wormContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for name in immutableContainers: {
  parent: blobService
  name: name
  properties: { publicAccess: 'None' }
}]

// Time-based retention on the WORM containers only. ARM cannot lock a policy (locking is an action):
// the README's post-deployment step locks it, after which it cannot be shortened or removed.
resource wormPolicies 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = [for (name, i) in immutableContainers: {
  parent: wormContainers[i]
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: immutabilityDays
    allowProtectedAppendWrites: true
  }
}]

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'quarantine-after-7-days'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: ['quarantine/'] }
            actions: { baseBlob: { delete: { daysAfterCreationGreaterThan: 7 } }, version: { delete: { daysAfterCreationGreaterThan: 7 } } }
          }
        }
        {
          name: 'exports-after-31-days'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: ['exports/'] }
            actions: { baseBlob: { delete: { daysAfterCreationGreaterThan: 31 } }, version: { delete: { daysAfterCreationGreaterThan: 31 } } }
          }
        }
        {
          name: 'uploads-after-2-days'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: ['specimen-uploads/'] }
            actions: { baseBlob: { delete: { daysAfterCreationGreaterThan: 2 } }, version: { delete: { daysAfterCreationGreaterThan: 2 } } }
          }
        }
      ]
    }
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

var logs = [{ categoryGroup: 'audit', enabled: true }, { categoryGroup: 'allLogs', enabled: true }]
var metrics = [{ category: 'Transaction', enabled: true }]

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: { workspaceId: logAnalyticsWorkspaceId, logs: logs, metrics: metrics }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
  properties: { workspaceId: logAnalyticsWorkspaceId, logs: logs, metrics: metrics }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
  properties: { workspaceId: logAnalyticsWorkspaceId, logs: logs, metrics: metrics }
}

// Defender for Storage on this account: malware scanning of uploads and sensitive data threat detection.
resource defenderForStorage 'Microsoft.Security/defenderForStorageSettings@2022-12-01-preview' = {
  name: 'current'
  scope: account
  properties: {
    isEnabled: true
    overrideSubscriptionLevelSettings: true
    malwareScanning: { onUpload: { isEnabled: true, capGBPerMonth: 5000 } }
    sensitiveDataDiscovery: { isEnabled: true }
  }
}

output name string = account.name
output id string = account.id
