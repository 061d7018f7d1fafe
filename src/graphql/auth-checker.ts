import type { AuthChecker } from 'type-graphql';
import { AppError } from '../shared/app-error';
import type { GraphQLContext } from './context';

/** `@Authorized()` needs any principal; `@Authorized('admin', …)` needs one of those roles. */
export const authChecker: AuthChecker<GraphQLContext> = ({ context }, roles) => {
  if (!context.principal) throw new AppError('UNAUTHENTICATED', 'authentication required: send X-API-Key or Authorization: Bearer');
  // several roles act together: any one of them that may is enough
  if (roles.length > 0 && !context.principal.roles.some((r) => roles.includes(r))) {
    throw new AppError('FORBIDDEN', `this needs one of the roles ${roles.join(', ')}; you are ${context.principal.role}`);
  }
  return true;
};
