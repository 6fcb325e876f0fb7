// Private endpoint of one storage service (blob, queue or table) in the private-endpoints subnet, with its
// private DNS zone (privatelink.<service>.core.windows.net in the public cloud) linked to the virtual
// network, so the function app resolves <account>.<service>.core.windows.net to the endpoint's private
// address. main.bicep deploys this module once per service the broker uses.
@description('Storage service: blob (host storage, deployment package), queue or table (the app\'s own data).')
@allowed([
  'blob'
  'queue'
  'table'
])
param service string

param storageAccountName string
param location string = resourceGroup().location
param tags object = {}

@description('Resource id of the virtual network the DNS zone is linked to.')
param virtualNetworkId string

@description('Resource id of the subnet that holds the private endpoint.')
param subnetId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource privateDnsZone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: 'privatelink.${service}.${environment().suffixes.storage}'
  location: 'global'
  tags: tags
}

resource privateDnsZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: privateDnsZone
  name: 'link-${last(split(virtualNetworkId, '/'))}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: virtualNetworkId
    }
  }
}

resource privateEndpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: 'pep-${storageAccountName}-${service}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: '${storageAccountName}-${service}'
        properties: {
          privateLinkServiceId: storage.id
          groupIds: [
            service
          ]
        }
      }
    ]
  }
}

// Registers the endpoint's address in the private DNS zone (and keeps it current).
resource privateDnsZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = {
  parent: privateEndpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: replace(privateDnsZone.name, '.', '-')
        properties: {
          privateDnsZoneId: privateDnsZone.id
        }
      }
    ]
  }
}

output privateEndpointId string = privateEndpoint.id
output privateDnsZoneName string = privateDnsZone.name
