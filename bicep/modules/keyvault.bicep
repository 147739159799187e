param location string
param tags object
param resourceToken string
param softDeleteRetentionInDays int
param allowedIpRanges array
param logAnalyticsWorkspaceId string
@description('False in production: only the private endpoint reaches the vault.')
param allowPublicNetworkAccess bool = false

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-${resourceToken}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    // Deleted tenant keys stay recoverable this long and cannot be purged sooner (purge protection):
    // the deletion certificate states key deletion + this window as the date copies become unreadable.
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    publicNetworkAccess: allowPublicNetworkAccess ? 'Enabled' : 'Disabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: allowPublicNetworkAccess && empty(allowedIpRanges) ? 'Allow' : 'Deny'
      ipRules: [for range in allowedIpRanges: { value: range }]
    }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [{ categoryGroup: 'audit', enabled: true }, { categoryGroup: 'allLogs', enabled: true }]
    metrics: [{ category: 'AllMetrics', enabled: true }]
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
