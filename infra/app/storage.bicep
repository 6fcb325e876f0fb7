// Storage account for the Functions host (AzureWebJobsStorage), the deployment package and the app's own
// queues and tables. Shared-key access is disabled: every client authenticates with Microsoft Entra ID.
// Always: HTTPS only, TLS 1.2 or later, no anonymous blob access, no cross-tenant replication.
param name string
param location string = resourceGroup().location
param tags object = {}
param deploymentStorageContainerName string

@description('True when the account is reached through private endpoints in the broker\'s virtual network (storage-private-endpoint.bicep): public network access is then disabled.')
param vnetEnabled bool = true

@description('Redundancy. Standard_ZRS (three copies across availability zones) where the region offers it; main.bicep picks Standard_GRS in regions without ZRS. Geo-redundant SKUs add a copy in the paired region.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_ZRS'

@description('Queues the app uses (handoff.settings.STORAGE_QUEUES).')
param queueNames array

@description('Tables the app uses (handoff.settings.STORAGE_TABLES).')
param tableNames array

// Network access. With the virtual network (vnetEnabled, the default) the account takes traffic only from
// its private endpoints: public network access is disabled and the firewall denies by default. Without it the
// public endpoint stays open, because the function app (Flex Consumption without virtual network integration
// has no fixed outbound addresses to allow) and the deployment from a developer's laptop (azd, and local runs
// with principalId's data roles) reach the account over the internet. Every request still needs a Microsoft
// Entra token with a data role, over HTTPS with TLS 1.2 or later; nothing is readable anonymously.
// (Comment blocks inside resource bodies stay short: checkov's Bicep parser rejects long ones.)
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:defaultAction is Deny whenever vnetEnabled (the default); checkov does not evaluate Bicep conditions. The vnetEnabled=false variant keeps the public endpoint on purpose (comment above); tests/infra/checks.py check_private_network verifies the condition.
  // checkov:skip=CKV_AZURE_206:Redundancy is the skuName parameter: Standard_ZRS by default (zone-redundant, three synchronous copies in the region; this check counts only geo-redundant SKUs as replicated), Standard_GRS where the region has no ZRS, and any geo-redundant SKU through storageSkuName.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // Disable local authentication methods as per policy
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // Private endpoints only with the virtual network; public endpoint without it (see above).
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: vnetEnabled ? 'Deny' : 'Allow'
      // Trusted Azure services keep access if public access is later set to selected networks.
      bypass: 'AzureServices'
    }
  }
}

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobServices
  name: deploymentStorageContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueServices 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueServices
  name: queueName
}]

resource tableServices 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableServices
  name: tableName
}]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
