import { IsOptional, Max, Min } from 'class-validator';
import { ArgsType, Field, Int } from 'type-graphql';
import { MAX_PAGE_SIZE } from './relay';

@ArgsType()
export class PageArgs {
  @Field(() => Int, { nullable: true, description: `page size, 0..${MAX_PAGE_SIZE} (default 20)` })
  @IsOptional()
  @Min(0)
  @Max(MAX_PAGE_SIZE, { message: `first must be between 0 and ${MAX_PAGE_SIZE}` })
  first?: number;

  @Field(() => String, { nullable: true, description: 'endCursor of the previous page' })
  @IsOptional()
  after?: string;
}
