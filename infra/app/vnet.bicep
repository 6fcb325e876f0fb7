// Virtual network of the broker (deployed when vnetEnabled): one subnet for the function app's outbound
// virtual network integration, delegated to Microsoft.App/environments as Flex Consumption requires, and one
// for the storage account's private endpoints. Each subnet has its own network security group holding only
// Azure's default rules (traffic inside the virtual network and outbound to the internet allowed, inbound
// from the internet denied); docs/deploy.md lists what the broker needs if you add deny rules or routes.
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Address space of the virtual network. Pick a range that does not overlap networks you peer with.')
param addressPrefix string = '10.0.0.0/16'

@description('Subnet of the function app\'s virtual network integration (Flex Consumption needs at least a /27; one address per instance).')
param appSubnetPrefix string = '10.0.1.0/24'

@description('Subnet of the storage private endpoints.')
param privateEndpointSubnetPrefix string = '10.0.2.0/24'

var appSubnetName = 'app'
var privateEndpointSubnetName = 'private-endpoints'

resource appSubnetNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${appSubnetName}-${name}'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource privateEndpointSubnetNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${privateEndpointSubnetName}-${name}'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource virtualNetwork 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: appSubnetName
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: {
            id: appSubnetNsg.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                // The delegation Flex Consumption virtual network integration requires.
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: privateEndpointSubnetName
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          networkSecurityGroup: {
            id: privateEndpointSubnetNsg.id
          }
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

output id string = virtualNetwork.id
output name string = virtualNetwork.name
output appSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', virtualNetwork.name, appSubnetName)
output privateEndpointSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', virtualNetwork.name, privateEndpointSubnetName)
