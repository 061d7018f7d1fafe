import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A CRM record as pulled; `payload` is the raw vendor JSON and never exposed as is. */
@Entity({ name: 'crm_record' })
export class CrmRecordEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'customer_id', type: 'uuid', nullable: true })
  customerId!: string | null;

  @Column({ type: 'text' })
  system!: 'salesforce' | 'hubspot';

  @Column({ name: 'object_type', type: 'text' })
  objectType!: string;

  @Column({ name: 'external_id', type: 'text' })
  externalId!: string;

  @Column({ name: 'owner_id', type: 'text', nullable: true })
  ownerId!: string | null;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  payload!: Record<string, unknown>;

  @Column({ type: 'timestamptz', nullable: true })
  modstamp!: Date | null;

  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true })
  deletedAt!: Date | null;
}
