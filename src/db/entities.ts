import { CrmRecordEntity } from '../crm/crm-record.entity';
import { CustomerIdentityEntity } from '../customers/customer-identity.entity';
import { CustomerEntity } from '../customers/customer.entity';
import { InteractionEntity } from '../interactions/interaction.entity';
import { DepartmentEntity, TopicEntity } from '../sentiment/taxonomy.entity';

export const entities = [CustomerEntity, CustomerIdentityEntity, InteractionEntity, DepartmentEntity, TopicEntity, CrmRecordEntity];
