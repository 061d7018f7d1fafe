/**
 * The example operations of the README, saved as tabs of the explorer. A unit test checks that
 * each one validates against the schema, so a schema change cannot leave a broken example here.
 */
export const EXPLORER_EXAMPLES: readonly { title: string; query: string; variables?: string }[] = [
  {
    title: 'Customers with negative sentiment',
    query: `# customers with negative sentiment, their identities and latest interactions
{
  customers(first: 20, filter: { label: NEGATIVE }) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id displayName identities { kind network value redacted }
      sentiment { score label trend interactionCount lastInteractionAt }
      interactions(first: 5) { edges { node { source text occurredAt intent topics { department } } } } } }
  }
}`,
  },
  {
    title: 'Inbound complaints',
    query: `{
  interactions(first: 50, filter: { intent: COMPLAINT, direction: INBOUND, from: "2026-11-01T00:00:00Z" }) {
    totalCount
    edges { node { text customer { displayName } } }
  }
}`,
  },
  {
    title: 'Analyze a text',
    query: `{
  analyzeText(text: "Charged twice, on hold for an hour. Switching to a competitor.") {
    score label intent topics { name department } explanation { token weight }
  }
}`,
  },
  {
    title: 'Care desk queue',
    query: `# the queue, most urgent first (age against the SLA, negativity, customer value)
{
  openItems(first: 20, department: "Logistics", overdueOnly: true) {
    totalCount
    edges { node { id channel intent dueAt ageSeconds urgency escalation { system caseUrl }
      customer { displayName } interaction { text url } } }
  }
}`,
  },
  {
    title: 'Listening gap this week',
    query: `# how many did we ignore this week, and where?
{
  listeningGap(from: "2026-11-16T00:00:00Z", to: "2026-11-23T00:00:00Z") {
    received answered ignored ignoredShare medianFirstResponseSeconds p90FirstResponseSeconds
    byDepartment { department ignored ignoredShare }
    byChannel { channel ignoredShare }
  }
}`,
  },
  {
    title: 'Department insights',
    query: `{
  departmentInsights(from: "2026-11-16T00:00:00Z", to: "2026-11-23T00:00:00Z") {
    department volume averageSentiment sentimentChange
    topNegativeTopics { topic negativeCount examples { text url } }
    openItems overdueItems
  }
}`,
  },
  {
    title: 'Sentiment trend of a department',
    query: `{
  sentimentTrend(scope: DEPARTMENT, id: "Logistics", bucket: DAY, from: "2026-11-01T00:00:00Z", to: "2026-11-23T00:00:00Z") {
    start count averageScore
  }
}`,
  },
];
