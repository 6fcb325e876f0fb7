// Handoff Broker: Azure Functions (Flex Consumption) app that hands investigations between Azure SRE Agents.
// Layout follows Azure-Samples/functions-quickstart-python-http-azd and durable-functions-quickstart-python-azd,
// with plain resource declarations instead of registry modules. No keys and no connection strings: every
// connection (host storage, the app's queues and tables, Application Insights) uses the user-assigned identity.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the environment, used to generate a short unique hash used in all resources.')
param environmentName string

@minLength(1)
@description('Primary location for all resources (must offer Flex Consumption).')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'eastus2euap'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

// Optional resource names (generated from the environment name when empty).
param apiServiceName string = ''
param apiUserAssignedIdentityName string = ''
param applicationInsightsName string = ''
param appServicePlanName string = ''
param logAnalyticsName string = ''
param resourceGroupName string = ''
param storageAccountName string = ''
param vNetName string = ''

// Network and storage redundancy -------------------------------------------------------------------------

@description('Put the function app in a virtual network and reach storage only through private endpoints (blob, queue, table) with public network access disabled. false: no virtual network, storage keeps its public endpoint (see app/storage.bicep).')
param vnetEnabled bool = true

@description('Address space of the virtual network (vnetEnabled).')
param vnetAddressPrefix string = '10.0.0.0/16'

@description('Subnet of the function app\'s virtual network integration, inside vnetAddressPrefix.')
param vnetAppSubnetPrefix string = '10.0.1.0/24'

@description('Subnet of the storage private endpoints, inside vnetAddressPrefix.')
param vnetPrivateEndpointSubnetPrefix string = '10.0.2.0/24'

@description('HANDOFF_EGRESS_ALLOWED_NETWORKS: comma-separated CIDRs the broker may call although they are private (agents or vendors behind private endpoints). Empty: private addresses are refused.')
param egressAllowedNetworks string = ''

@description('Storage redundancy. Empty: Standard_ZRS where the region offers zone-redundant storage, otherwise Standard_GRS.')
@allowed([
  ''
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSkuName string = ''

@description('Object id of the deploying user or principal. When set, it gets the same storage data roles as the broker so local runs can use the cloud account. Leave empty in production.')
param principalId string = ''

@description('Type of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Path of the agent registry JSON file, relative to the app root (the file ships in the app package).')
param handoffConfigPath string = 'handoff.config.json'

@description('Maximum number of Flex Consumption instances.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Instance memory of the Flex Consumption app, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// SRE Agent access ----------------------------------------------------------------------------------------

@description('Resource ids of the SRE Agents (Microsoft.App/agents) the broker delivers to. The broker identity gets sreAgentRoleDefinitionId on each.')
param sreAgentResourceIds array = []

@description('The same as sreAgentResourceIds, as one comma-separated string (set from the SRE_AGENT_RESOURCE_IDS azd environment value).')
param sreAgentResourceIdList string = ''

@description('Role given to the broker identity on each agent so it can create threads and post messages. Default: SRE Agent Administrator, the only SRE Agent role id seen in Microsoft samples. SRE Agent Standard User (2d84a65a-63b2-4343-bbb6-31105d857bc1) is less privileged but its id comes from community sources only.')
param sreAgentRoleDefinitionId string = 'e79298df-d852-4c6d-84f9-5d13249d1e55'

@description('Also give the broker identity Reader on each agent, so it can read the agent endpoint from ARM when the registry entry has no "endpoint".')
param grantReaderOnAgents bool = true

// App Service Authentication (Easy Auth) -------------------------------------------------------------------

@description('Put App Service Authentication (Microsoft Entra ID) in front of the app. Callers then need an Entra token for easyAuthClientId from an allowed client application.')
param easyAuthEnabled bool = false

@description('Application (client) id of the Entra app registration that represents the broker API. Required when easyAuthEnabled.')
param easyAuthClientId string = ''

@description('Client application ids allowed to call the broker (for example the SRE Agents\' managed identities\' client ids).')
param easyAuthAllowedApplications array = []

@description('The same as easyAuthAllowedApplications, as one comma-separated string (set from the EASY_AUTH_ALLOWED_APPLICATIONS azd environment value).')
param easyAuthAllowedApplicationList string = ''

@description('Paths served without an Entra token. /api/health stays open for probes; /api/mcp stays on function keys because an SRE Agent MCP connector can only send static headers.')
param easyAuthExcludedPaths array = [
  '/api/health'
  '/api/mcp'
]

// Azure Monitor ---------------------------------------------------------------------------------------------

@description('"secureWebhook" creates an Action Group whose secure webhook (Entra-authenticated, common alert schema) calls the broker\'s alerts endpoint. "none" creates no Action Group (see docs/deploy.md for the function-key webhook variant).')
@allowed([
  'none'
  'secureWebhook'
])
param alertsActionGroupMode string = 'none'

@description('Object id of the Entra app registration (with the ActionGroupsSecureWebhook app role) that the secure webhook requests tokens for.')
param alertsEntraAppObjectId string = ''

@description('Application ID URI of that Entra app registration (for example api://<client id>).')
param alertsEntraAppIdentifierUri string = ''

@description('Name of the Action Group (generated when empty).')
param alertsActionGroupName string = ''

// Operations --------------------------------------------------------------------------------------------------

@description('Resource id of an existing Action Group that the operations alert rules (failed handoffs, poison messages) notify. Empty: the alerts fire in Azure Monitor without notifying anyone (docs/operations.md).')
param operationsActionGroupId string = ''

// ----------------------------------------------------------------------------------------------------------

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = !empty(apiServiceName) ? apiServiceName : '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'

// The app's queues and tables: exactly handoff.settings.STORAGE_QUEUES and STORAGE_TABLES (checked by tests/infra).
var queueNames = [
  'handoff-deliveries'
  'handoff-deliveries-poison'
  'shared-memory-writes'
  'shared-memory-writes-poison'
]
var tableNames = [
  'handoffs'
  'handofflinks'
  'handoffalerts'
  'handoffhistory'
  'handoffindex'
  'sharedmemory'
]

// Regions of the location list with zone-redundant storage (ZRS) for standard general-purpose v2 accounts
// (Azure Storage documentation, "Azure regions that support zone-redundant storage").
var zoneRedundantStorageRegions = [
  'australiaeast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'westeurope'
  'westus2'
  'westus3'
]
var zoneRedundantStorage = contains(zoneRedundantStorageRegions, location)
var storageSku = !empty(storageSkuName) ? storageSkuName : (zoneRedundantStorage ? 'Standard_ZRS' : 'Standard_GRS')

// The storage services the broker uses, each reached through its own private endpoint when vnetEnabled:
// blob (host storage and the deployment package), queue and table (the app's data).
var storagePrivateEndpointServices = [
  'blob'
  'queue'
  'table'
]

// The comma-separated lists are split and trimmed with for-expressions rather than map(): checkov's Bicep
// parser (tests/infra/test_checkov.py) does not know map() and would skip this file.
var agentIdItems = [for id in split(sreAgentResourceIdList, ','): trim(id)]
var agentIds = union(sreAgentResourceIds, filter(agentIdItems, id => !empty(id)))
// Azure Monitor's own Entra application, which calls secure webhooks.
var actionGroupsAppId = '461e8683-5575-4561-ac7f-899cc907d62a'
var secureWebhookEnabled = alertsActionGroupMode == 'secureWebhook'
var allowedApplicationItems = [for id in split(easyAuthAllowedApplicationList, ','): trim(id)]
var allowedApplications = union(
  easyAuthAllowedApplications,
  filter(allowedApplicationItems, id => !empty(id)),
  secureWebhookEnabled ? [actionGroupsAppId] : []
)

// Organize resources in a resource group
resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// User-assigned identity of the broker: storage, Application Insights and the SRE Agents.
module identity 'app/identity.bicep' = {
  name: 'apiUserAssignedIdentity'
  scope: rg
  params: {
    name: !empty(apiUserAssignedIdentityName) ? apiUserAssignedIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentStorageContainerName: deploymentStorageContainerName
    queueNames: queueNames
    tableNames: tableNames
    vnetEnabled: vnetEnabled
    skuName: storageSku
  }
}

module vnet 'app/vnet.bicep' = if (vnetEnabled) {
  name: 'vnet'
  scope: rg
  params: {
    name: !empty(vNetName) ? vNetName : '${abbrs.networkVirtualNetworks}${resourceToken}'
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: vnetAppSubnetPrefix
    privateEndpointSubnetPrefix: vnetPrivateEndpointSubnetPrefix
  }
}

// One private endpoint (and private DNS zone) per storage service, one at a time in the shared subnet.
@batchSize(1)
module storagePrivateEndpoints 'app/storage-private-endpoint.bicep' = [for service in storagePrivateEndpointServices: if (vnetEnabled) {
  name: 'storage-private-endpoint-${service}'
  scope: rg
  params: {
    service: service
    storageAccountName: storage.outputs.name
    location: location
    tags: tags
    virtualNetworkId: vnetEnabled ? vnet.outputs.id : ''
    subnetId: vnetEnabled ? vnet.outputs.privateEndpointSubnetId : ''
  }
}]

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

// The workbook and alert rules operators watch (docs/operations.md).
module operations 'app/operations.bicep' = {
  name: 'operations'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    namePrefix: 'handoff-${resourceToken}'
    actionGroupIds: empty(operationsActionGroupId) ? [] : [operationsActionGroupId]
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbacAssignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.applicationInsightsName
    managedIdentityPrincipalId: identity.outputs.principalId
    userIdentityPrincipalId: principalId
    userIdentityPrincipalType: principalType
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    appServicePlanName: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    storageAccountName: storage.outputs.name
    deploymentStorageContainerName: deploymentStorageContainerName
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    handoffConfigPath: handoffConfigPath
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    easyAuthEnabled: easyAuthEnabled
    easyAuthClientId: easyAuthClientId
    easyAuthAllowedApplications: allowedApplications
    easyAuthExtraAudiences: secureWebhookEnabled ? [alertsEntraAppIdentifierUri] : []
    alertsAudience: secureWebhookEnabled ? alertsEntraAppIdentifierUri : ''
    easyAuthExcludedPaths: easyAuthExcludedPaths
    virtualNetworkSubnetId: vnetEnabled ? vnet.outputs.appSubnetId : ''
    egressAllowedNetworks: egressAllowedNetworks
  }
  // The identity must hold its storage roles, and (vnetEnabled) storage must answer on its private
  // endpoints, before the host starts with identity-based connections.
  dependsOn: [
    rbac
    storagePrivateEndpoints
  ]
}

// One module per agent, deployed into the agent's own resource group (it may be in another subscription).
module sreAgentAccess 'app/sre-agent-access.bicep' = [for (agentId, i) in agentIds: {
  name: 'sre-agent-access-${i}-${resourceToken}'
  scope: resourceGroup(split(agentId, '/')[2], split(agentId, '/')[4])
  params: {
    agentName: last(split(agentId, '/'))
    principalId: identity.outputs.principalId
    roleDefinitionId: sreAgentRoleDefinitionId
    grantReader: grantReaderOnAgents
  }
}]

module alerts 'app/alerts.bicep' = if (secureWebhookEnabled) {
  name: 'alerts'
  scope: rg
  params: {
    name: !empty(alertsActionGroupName) ? alertsActionGroupName : '${abbrs.insightsActionGroups}handoff-${resourceToken}'
    tags: tags
    alertsUrl: '${api.outputs.uri}/api/alerts'
    entraAppObjectId: alertsEntraAppObjectId
    entraAppIdentifierUri: alertsEntraAppIdentifierUri
  }
}

// Outputs used by azd (written to .azure/<env>/.env). None of them is a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_FUNCTION_NAME string = api.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_SKU_NAME string = storageSku
output AZURE_VNET_NAME string = vnetEnabled ? vnet.outputs.name : ''
output BROKER_BASE_URL string = api.outputs.uri
output BROKER_MCP_URL string = '${api.outputs.uri}/api/mcp'
output BROKER_ALERTS_URL string = '${api.outputs.uri}/api/alerts'
output BROKER_PRINCIPAL_ID string = identity.outputs.principalId
output BROKER_CLIENT_ID string = identity.outputs.clientId
output BROKER_SRE_AGENT_COUNT int = length(agentIds)
output BROKER_ALERTS_ACTION_GROUP_ID string = secureWebhookEnabled ? alerts.outputs.id : ''
output BROKER_WORKBOOK_ID string = operations.outputs.workbookId
