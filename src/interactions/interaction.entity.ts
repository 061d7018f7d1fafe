import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

@Entity({ name: 'interaction' })
export class InteractionEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'event_id', type: 'text', nullable: true })
  eventId!: string | null;

  @Column({ type: 'text' })
  source!: string;

  @Column({ name: 'external_id', type: 'text' })
  externalId!: string;

  @Column({ type: 'text', nullable: true })
  url!: string | null;

  @Column({ type: 'text' })
  text!: string;

  @Column({ name: 'occurred_at', type: 'timestamptz' })
  occurredAt!: Date;

  @Column({ type: 'text' })
  direction!: 'inbound' | 'outbound';

  @Column({ name: 'in_reply_to', type: 'text', nullable: true })
  inReplyTo!: string | null;

  @Column({ name: 'author_handle', type: 'text', nullable: true })
  authorHandle!: string | null;

  @Column({ name: 'author_display_name', type: 'text', nullable: true })
  authorDisplayName!: string | null;

  @Column({ type: 'text', nullable: true })
  lang!: string | null;

  @Column({ type: 'double precision', nullable: true })
  rating!: number | null;

  @Column({ type: 'jsonb', nullable: true })
  metadata!: Record<string, unknown> | null;

  @Column({ name: 'sentiment_score', type: 'double precision' })
  sentimentScore!: number;

  @Column({ name: 'sentiment_label', type: 'text' })
  sentimentLabel!: string;

  @Column({ name: 'sentiment_confidence', type: 'double precision' })
  sentimentConfidence!: number;

  @Column({ type: 'text' })
  intent!: string;

  @Column({ name: 'intent_confidence', type: 'double precision', default: 0 })
  intentConfidence!: number;

  @Column({ type: 'jsonb', default: () => "'[]'" })
  explanation!: { token: string; weight: number }[];

  /** null: scored before models were recorded */
  @Column({ name: 'sentiment_model', type: 'text', nullable: true })
  sentimentModel!: string | null;

  /** the analyzer's complaint decision; null: stored before decisions were recorded */
  @Column({ type: 'boolean', nullable: true })
  complaint!: boolean | null;

  @Column({ name: 'complaint_probability', type: 'double precision', nullable: true })
  complaintProbability!: number | null;

  /** negative, a complaint or a churn threat; null: stored before decisions were recorded */
  @Column({ type: 'boolean', nullable: true })
  unhappy!: boolean | null;

  @Column({ name: 'customer_id', type: 'uuid', nullable: true })
  customerId!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
