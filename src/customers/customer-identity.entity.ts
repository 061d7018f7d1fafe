import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export type IdentityKindValue = 'email' | 'phone' | 'handle' | 'crm' | 'profile_url';

@Entity({ name: 'customer_identity' })
export class CustomerIdentityEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'customer_id', type: 'uuid' })
  customerId!: string;

  @Column({ type: 'text' })
  kind!: IdentityKindValue;

  /** the social network for handles and profile URLs, the CRM system for CRM ids */
  @Column({ type: 'text', nullable: true })
  network!: string | null;

  /** normalized, unique per kind: the deterministic key */
  @Column({ type: 'text' })
  value!: string;

  @Column({ name: 'raw_value', type: 'text', nullable: true })
  rawValue!: string | null;

  @Column({ type: 'text', default: 'ingest' })
  source!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
