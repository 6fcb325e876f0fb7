// Flex Consumption plan and the broker's function app (Python 3.11), with identity-based connections only.
param name string
param location string = resourceGroup().location
param tags object = {}
param serviceName string = 'api'
param appServicePlanName string
param applicationInsightsName string
param storageAccountName string
param deploymentStorageContainerName string

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

@description('HANDOFF_CONFIG: path of the agent registry file, relative to the app root.')
param handoffConfigPath string = 'handoff.config.json'

param runtimeName string = 'python'
param runtimeVersion string = '3.11'
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 100

param easyAuthEnabled bool = false
param easyAuthClientId string = ''
param easyAuthAllowedApplications array = []
param easyAuthExtraAudiences array = []
@description('Secure-webhook token audience for /api/alerts (the Application ID URI); empty: no token check.')
param alertsAudience string = ''

param easyAuthExcludedPaths array = [
  '/api/health'
]

@description('Subnet (delegated to Microsoft.App/environments) for outbound virtual network integration; empty for none.')
param virtualNetworkSubnetId string = ''

@description('Private CIDRs the broker may call (HANDOFF_EGRESS_ALLOWED_NETWORKS); empty for none.')
param egressAllowedNetworks string = ''

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Every app setting the broker gets. tests/infra checks these names against handoff/settings.py both ways.
var appSettings = {
  // Host storage (AzureWebJobsStorage), identity-based.
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: stg.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: stg.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: stg.properties.primaryEndpoints.table
  // Application Insights with Entra-authenticated ingestion (local auth is disabled).
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The app's own storage connection (queues and tables), separate from the host's.
  HANDOFF_STORAGE__queueServiceUri: stg.properties.primaryEndpoints.queue
  HANDOFF_STORAGE__tableServiceUri: stg.properties.primaryEndpoints.table
  HANDOFF_STORAGE__credential: 'managedidentity'
  HANDOFF_STORAGE__clientId: identityClientId
  // Identity used by azure-identity for SRE Agent and ARM tokens.
  AZURE_CLIENT_ID: identityClientId
  // Agent registry, shipped in the app package.
  HANDOFF_CONFIG: handoffConfigPath
  // Behind App Service Authentication the REST functions are anonymous and every caller brings an Entra
  // token; otherwise they require a function key.
  HANDOFF_HTTP_AUTH_LEVEL: easyAuthEnabled ? 'anonymous' : 'function'
  // Azure Monitor secure webhook: /api/alerts validates the Entra token itself when an audience is set.
  HANDOFF_ALERTS_AUDIENCE: alertsAudience
  HANDOFF_ALERTS_TENANT_ID: tenant().tenantId
  // Principal headers on /api/mcp are believed only when App Service Authentication covers that path too.
  HANDOFF_MCP_ENTRA_AUTH: easyAuthEnabled && !contains(easyAuthExcludedPaths, '/api/mcp') ? 'true' : 'false'
  // Outbound calls to private addresses are refused unless listed here (an empty value means none).
  HANDOFF_EGRESS_ALLOWED_NETWORKS: egressAllowedNetworks
}

// Audiences App Service Authentication accepts: the broker API's client id and its Application ID URI, plus
// the secure-webhook identifier URI when Azure Monitor calls /api/alerts.
var easyAuthAudiences = union([easyAuthClientId, 'api://${easyAuthClientId}'], easyAuthExtraAudiences)

resource appServicePlan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy of a Flex Consumption plan exists only in some of the regions the location parameter allows; the plan is not pinned to zones and scales out on demand.
  name: appServicePlanName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:The API stays reachable from the internet by design: SRE Agents (a managed service), MCP connectors and Azure Monitor action groups call it there. Callers authenticate with function keys or Entra tokens (App Service Authentication); docs/security.md.
  // checkov:skip=CKV_AZURE_17:Client certificates are not an option for the callers: SRE Agent MCP connectors send static headers only and Azure Monitor webhooks cannot present one. Callers authenticate with function keys or Entra tokens.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales to zero and adds instances on demand; always-ready instances would be a standing cost the broker does not need.
  // checkov:skip=CKV_AZURE_213:Not set: App Service health check evicts unhealthy instances of always-on plans, while this Flex Consumption app scales to zero; /api/health serves external probes (docs/deploy.md, step 6).
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: appServicePlan.id
    httpsOnly: true
    // Outbound virtual network integration: with it, the app's outbound traffic (storage, Entra ID, ARM,
    // the SRE Agents) leaves through the virtual network, and storage is reached on its private endpoints.
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentStorageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
    }
  }

  resource configAppSettings 'config' = {
    name: 'appsettings'
    properties: appSettings
  }

  // azd deploys with Microsoft Entra ID; publishing with basic credentials stays off.
  resource scmBasicAuth 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: {
      allow: false
    }
  }

  resource ftpBasicAuth 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: {
      allow: false
    }
  }
}

// App Service Authentication (Easy Auth): Microsoft Entra ID tokens for easyAuthClientId, from allowed client
// applications only; unauthenticated requests get 401 (no redirects: callers are services, not browsers).
// The app reads the caller from the X-MS-CLIENT-PRINCIPAL headers the platform injects.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (easyAuthEnabled) {
  // This is the authsettingsV2 resource; checkov reads every Microsoft.Web/sites/config as the site
  // configuration, so the checks below look for site settings that do not belong here.
  // checkov:skip=CKV_AZURE_13:authsettingsV2 switches authentication on at properties.platform.enabled (true here); the check reads the property of the older authsettings resource.
  // checkov:skip=CKV_AZURE_63:Site setting (HTTP logging), not part of authsettingsV2; Flex Consumption apps log to Application Insights.
  // checkov:skip=CKV_AZURE_65:Site setting (detailed error pages), not part of authsettingsV2.
  // checkov:skip=CKV_AZURE_66:Site setting (failed request tracing), not part of authsettingsV2.
  // checkov:skip=CKV_AZURE_80:Site setting (.NET Framework version), not part of authsettingsV2; the app is Python.
  // checkov:skip=CKV_AZURE_88:Site setting (Azure Files content share), not part of authsettingsV2; Flex Consumption runs from a blob container.
  // checkov:skip=CKV_AZURE_222:Site setting (public network access), not part of authsettingsV2; see the function app.
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: easyAuthExcludedPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: easyAuthClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: easyAuthAudiences
          defaultAuthorizationPolicy: {
            allowedApplications: easyAuthAllowedApplications
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

output SERVICE_API_NAME string = functionApp.name
output name string = functionApp.name
output uri string = 'https://${functionApp.properties.defaultHostName}'
