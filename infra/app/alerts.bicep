// Action Group whose secure webhook calls the broker's alerts endpoint with the common alert schema.
// Azure Monitor authenticates with a Microsoft Entra token for the given app registration, so the URL holds
// no key. (The function-key variant is a post-deployment step: see docs/deploy.md.)
param name string
param tags object = {}

@description('Broker alerts endpoint, https://<host>/api/alerts.')
param alertsUrl string

@description('Object id of the Entra app registration that exposes the ActionGroupsSecureWebhook app role.')
@minLength(1)
param entraAppObjectId string

@description('Application ID URI of that app registration.')
@minLength(1)
param entraAppIdentifierUri string

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: name
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'handoff'
    enabled: true
    webhookReceivers: [
      {
        name: 'handoff-broker'
        serviceUri: alertsUrl
        useCommonAlertSchema: true
        useAadAuth: true
        objectId: entraAppObjectId
        identifierUri: entraAppIdentifierUri
        tenantId: tenant().tenantId
      }
    ]
  }
}

output id string = actionGroup.id
output name string = actionGroup.name
