import { ArgsType, Field, Int } from 'type-graphql';
import { MAX_PAGE_SIZE } from './relay';

/** Relay window arguments; checked by the keyset pager (src/graphql/keyset.ts), which names the argument and the rule. */
@ArgsType()
export class PageArgs {
  @Field(() => Int, { nullable: true, description: `page size from the start (or after \`after\`), 0..${MAX_PAGE_SIZE}; default 20` })
  first?: number;

  @Field(() => String, { nullable: true, description: 'endCursor of the previous page: the page starts after it' })
  after?: string;

  @Field(() => Int, { nullable: true, description: `page size from the end (or before \`before\`), 0..${MAX_PAGE_SIZE}; not with first` })
  last?: number;

  @Field(() => String, { nullable: true, description: 'startCursor of the next page: the page ends before it' })
  before?: string;
}
