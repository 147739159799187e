// Microsoft Defender plans for the subscription: the intrusion detection for storage and Key Vault.
targetScope = 'subscription'

resource storagePlan 'Microsoft.Security/pricings@2024-01-01' = {
  name: 'StorageAccounts'
  properties: { pricingTier: 'Standard', subPlan: 'DefenderForStorageV2' }
}

resource keyVaultPlan 'Microsoft.Security/pricings@2024-01-01' = {
  name: 'KeyVaults'
  properties: { pricingTier: 'Standard', subPlan: 'PerKeyVault' }
}
