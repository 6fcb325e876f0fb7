// Gives the broker identity access to one SRE Agent. Deployed into the agent's resource group.
param agentName string
param principalId string

@description('SRE Agent role that allows creating threads and posting messages (default: SRE Agent Administrator).')
param roleDefinitionId string = 'e79298df-d852-4c6d-84f9-5d13249d1e55'

@description('Also assign Reader, so the broker can read properties.agentEndpoint from ARM.')
param grantReader bool = true

var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

resource agent 'Microsoft.App/agents@2025-05-01-preview' existing = {
  name: agentName
}

resource agentRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(agent.id, principalId, roleDefinitionId)
  scope: agent
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource agentReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantReader) {
  name: guid(agent.id, principalId, reader)
  scope: agent
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', reader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
