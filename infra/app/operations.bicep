// What operators watch (docs/operations.md): an Application Insights workbook of handoffs by status and
// target, latency, failures and poison messages, and two log alert rules (failed handoffs, poison
// messages). Everything is read from the `traces` table: the broker logs one line per lifecycle point of a
// handoff ("handoff lifecycle: point=... handoff=... source=... target=... latencyMs=...", see
// handoff/adapters/operations_log.py), and the broker and the Functions host log each message moved to a
// poison queue. The queries are checked against those lines by tests/infra/test_templates.py.
param location string = resourceGroup().location
param tags object = {}

@description('Resource id of the Application Insights component the broker logs to.')
param applicationInsightsId string

@description('Prefix of the alert rule names.')
param namePrefix string

@description('Action groups the alert rules notify (resource ids). Empty: the alerts fire in Azure Monitor without notifying anyone.')
param actionGroupIds array = []

// The lifecycle lines, one row each, with their fields. itemCount counts what adaptive sampling dropped.
var lifecycle = '''
traces
| where message startswith "handoff lifecycle: "
| extend point = extract(@"point=(\S+)", 1, message), handoffId = extract(@"handoff=(\S+)", 1, message),
    source = extract(@"source=(\S+)", 1, message), target = extract(@"target=(\S+)", 1, message),
    latencyMs = toreal(extract(@"latencyMs=(\d+)", 1, message)), outcome = extract(@"outcome=(\S+)", 1, message),
    reason = extract(@"reason=(.*)$", 1, message)
'''

// Messages moved to a poison queue: the broker's line for each message it parks there ("poison message:
// queue=... op=... handoff=... reason=...") and the Functions host's for each message it gives up on
// ("Message has reached MaxDequeueCount of 5. Moving message to queue 'handoff-deliveries-poison'."). Both
// are matched by how they start: other lines may quote an agent's or a partner's answer in their reason.
var poison = '''
traces
| where message startswith "poison message: " or message startswith "Message has reached MaxDequeueCount of "
| extend queue = coalesce(extract(@"queue=(\S+)", 1, message), extract(@"to queue '([^']+)'", 1, message)),
    handoffId = extract(@"handoff=(\S+)", 1, message), reason = extract(@"reason=(.*)$", 1, message)
'''

var byStatusAndTarget = '${lifecycle}| where point in ("delivered", "handedBack", "failed")\n| summarize arg_max(timestamp, point) by handoffId, target\n| summarize handoffs = count() by target, status = point\n| order by target asc, status asc'
var pointsOverTime = '${lifecycle}| summarize events = sum(itemCount) by point, bin(timestamp, {TimeRange:grain})'
var latency = '${lifecycle}| where point in ("delivered", "handedBack")\n| summarize handoffs = sum(itemCount), p50_s = round(percentile(latencyMs, 50) / 1000, 1), p95_s = round(percentile(latencyMs, 95) / 1000, 1), max_s = round(max(latencyMs) / 1000, 1) by step = iff(point == "delivered", "accepted to delivered", "accepted to handed back"), target\n| order by step asc, target asc'
var failures = '${lifecycle}| where point == "failed"\n| project timestamp, handoffId, source, target, latency_s = round(latencyMs / 1000, 1), reason\n| order by timestamp desc'
var functionFailures = 'requests\n| where success == false\n| summarize failed = sum(itemCount) by function = operation_Name, resultCode\n| order by failed desc'
var poisonOverTime = '${poison}| summarize messages = sum(itemCount) by queue, bin(timestamp, {TimeRange:grain})'
var poisonLines = '${poison}| project timestamp, queue, handoffId, reason, message\n| order by timestamp desc\n| take 100'

var timeRange = {
  version: 'KqlParameterItem/1.0'
  name: 'TimeRange'
  label: 'Time range'
  type: 4
  isRequired: true
  value: {
    durationMs: 86400000
  }
  typeSettings: {
    selectableValues: [
      { durationMs: 3600000 }
      { durationMs: 14400000 }
      { durationMs: 86400000 }
      { durationMs: 259200000 }
      { durationMs: 604800000 }
      { durationMs: 2592000000 }
    ]
    allowCustom: true
  }
}

var queries = [
  {
    name: 'status-by-target'
    title: 'Handoffs by status and target (the last lifecycle point each reached)'
    query: byStatusAndTarget
    visualization: 'table'
  }
  {
    name: 'points-over-time'
    title: 'Lifecycle points over time'
    query: pointsOverTime
    visualization: 'timechart'
  }
  {
    name: 'latency'
    title: 'Latency from acceptance, by target (seconds)'
    query: latency
    visualization: 'table'
  }
  {
    name: 'failures'
    title: 'Failed handoffs (replay with POST /api/handoffs/{id}/retry)'
    query: failures
    visualization: 'table'
  }
  {
    name: 'function-failures'
    title: 'Failed function runs'
    query: functionFailures
    visualization: 'table'
  }
  {
    name: 'poison-over-time'
    title: 'Messages moved to a poison queue'
    query: poisonOverTime
    visualization: 'barchart'
  }
  {
    name: 'poison-lines'
    title: 'Poison messages: the log lines (newest first)'
    query: poisonLines
    visualization: 'table'
  }
]

var introItems = [
  {
    type: 1
    name: 'intro'
    content: {
      json: '## Handoff Broker\nHandoffs by status and target, latency and failures from the broker\'s lifecycle log lines; messages moved to the poison queues. How to act on them: docs/operations.md.'
    }
  }
  {
    type: 9
    name: 'parameters'
    content: {
      version: 'KqlParameterItem/1.0'
      parameters: [
        timeRange
      ]
      style: 'pills'
      queryType: 0
      resourceType: 'microsoft.insights/components'
    }
  }
]

var queryItems = [for item in queries: {
  type: 3
  name: item.name
  content: {
    version: 'KqlItem/1.0'
    title: item.title
    query: item.query
    size: 0
    timeContextFromParameter: 'TimeRange'
    queryType: 0
    resourceType: 'microsoft.insights/components'
    visualization: item.visualization
  }
}]

var workbookContent = {
  version: 'Notebook/1.0'
  items: concat(introItems, queryItems)
  isLocked: false
  fallbackResourceIds: [
    applicationInsightsId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(applicationInsightsId, 'handoff-broker-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Handoff Broker'
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: string(workbookContent)
  }
}

var rules = [
  {
    name: 'failed-handoffs'
    displayName: 'Handoff Broker: failed handoffs'
    description: 'A handoff failed (delivery, cross-link or hand-back gave up). Find it and replay it: docs/operations.md.'
    severity: 2
    query: '${lifecycle}| where point == "failed"\n| project timestamp, handoffId, source, target, reason'
  }
  {
    name: 'poison-messages'
    displayName: 'Handoff Broker: messages moved to a poison queue'
    description: 'A queue message was moved to handoff-deliveries-poison or shared-memory-writes-poison. What to do: docs/operations.md.'
    severity: 2
    query: '${poison}| project timestamp, queue, handoffId, reason'
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: '${namePrefix}-${rule.name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}]

output workbookId string = workbook.id
output alertRuleIds array = [for (rule, i) in rules: alertRules[i].id]
