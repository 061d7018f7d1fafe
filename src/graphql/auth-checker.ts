import type { AuthChecker } from 'type-graphql';
import type { Principal } from '../auth/auth.service';
import { AppError } from '../shared/app-error';
import type { GraphQLContext } from './context';

/** What `@Authorized()` asks, for resolvers no decorator guards (federation's `_entities`). */
export function requirePrincipal(context: GraphQLContext): Principal {
  if (!context.principal) throw new AppError('UNAUTHENTICATED', 'authentication required: send X-API-Key or Authorization: Bearer');
  return context.principal;
}

/** `@Authorized()` needs any principal; `@Authorized('admin', …)` needs one of those roles. */
export const authChecker: AuthChecker<GraphQLContext> = ({ context }, roles) => {
  const principal = requirePrincipal(context);
  // several roles act together: any one of them that may is enough
  if (roles.length > 0 && !principal.roles.some((r) => roles.includes(r))) {
    throw new AppError('FORBIDDEN', `this needs one of the roles ${roles.join(', ')}; you are ${principal.role}`);
  }
  return true;
};
