// The Durable Task Scheduler as LabVault's durable backend (instead of the Azure Storage provider):
// a scheduler and one task hub. The app's identity gets its role in functionapp.bicep (the app
// needs the endpoint first); the scheduler has no keys, only Entra ID roles.
param location string
param tags object
param resourceToken string
param taskHubName string

@description('Dedicated: predictable capacity in units; Consumption: pay per action.')
@allowed(['Dedicated', 'Consumption'])
param skuName string = 'Dedicated'

resource scheduler 'Microsoft.DurableTask/schedulers@2024-10-01-preview' = {
  name: 'dts-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: skuName == 'Dedicated' ? { name: 'Dedicated', capacity: 1 } : { name: 'Consumption' }
    // Reached over its endpoint with an Entra ID token only (Durable Task Data Contributor).
    ipAllowlist: ['0.0.0.0/0']
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2024-10-01-preview' = {
  parent: scheduler
  name: taskHubName
}

output name string = scheduler.name
output endpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
