import { registerEnumType } from 'type-graphql';

export enum SentimentLabel {
  NEGATIVE = 'negative',
  NEUTRAL = 'neutral',
  POSITIVE = 'positive',
}
registerEnumType(SentimentLabel, { name: 'SentimentLabel', description: 'negative: score ≤ -0.35; positive: score ≥ 0.35; neutral between (for interactions and for customer averages)' });

export enum Direction {
  INBOUND = 'inbound',
  OUTBOUND = 'outbound',
}
registerEnumType(Direction, { name: 'Direction', description: 'inbound: from the customer; outbound: from the company' });

export enum Intent {
  COMPLAINT = 'complaint',
  QUESTION = 'question',
  PRAISE = 'praise',
  PURCHASE_INTENT = 'purchase_intent',
  CHURN_THREAT = 'churn_threat',
  OTHER = 'other',
}
registerEnumType(Intent, { name: 'Intent' });

export enum IdentityKind {
  EMAIL = 'email',
  PHONE = 'phone',
  HANDLE = 'handle',
  CRM = 'crm',
  PROFILE_URL = 'profile_url',
}
registerEnumType(IdentityKind, { name: 'IdentityKind' });

export enum UserRoleEnum {
  ADMIN = 'admin',
  ANALYST = 'analyst',
  AGENT = 'agent',
  SALES = 'sales',
  SERVICE = 'service',
}
