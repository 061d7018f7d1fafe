import type { Principal } from '../auth/auth.service';
import type { Loaders } from './loaders';

export interface GraphQLContext {
  requestId: string;
  principal: Principal | null;
  loaders: Loaders;
}
