import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

@Entity({ name: 'customer' })
export class CustomerEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'display_name', type: 'text', nullable: true })
  displayName!: string | null;

  /** set when this customer was merged into another; the survivor holds everything */
  @Column({ name: 'merged_into_id', type: 'uuid', nullable: true })
  mergedIntoId!: string | null;

  @Column({ name: 'sentiment_score', type: 'double precision', nullable: true })
  sentimentScore!: number | null;

  @Column({ name: 'sentiment_label', type: 'text', nullable: true })
  sentimentLabel!: string | null;

  @Column({ name: 'sentiment_trend', type: 'double precision', nullable: true })
  sentimentTrend!: number | null;

  @Column({ name: 'interaction_count', type: 'integer', default: 0 })
  interactionCount!: number;

  @Column({ name: 'last_interaction_at', type: 'timestamptz', nullable: true })
  lastInteractionAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
