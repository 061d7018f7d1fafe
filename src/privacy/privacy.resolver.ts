import { Arg, Authorized, Ctx, ID, Int, Mutation, Query, Resolver } from 'type-graphql';
import { GraphQLJSONObject } from 'graphql-scalars';
import type { GraphQLContext } from '../graphql/context';
import { fromGlobalId } from '../graphql/relay';
import type { ErasureService } from './erasure.service';
import type { CustomerExportService } from './export.service';
import type { RetentionJob } from './retention.job';
import { Erasure, RetentionStatus, toErasure, toRetentionStatus } from './privacy.type';

@Resolver()
export class PrivacyResolver {
  constructor(
    private readonly erasures: ErasureService,
    private readonly exports: CustomerExportService,
    private readonly retention: RetentionJob,
  ) {}

  @Authorized('admin')
  @Mutation(() => Erasure, {
    description:
      'Erases a customer everywhere (identities, display name, interaction texts and authors, CRM links and written-back fields, open listening items, topics via tombstones and customer-erasure.v1). Idempotent. `reason`: a ticket reference, never personal data (it is kept in the audit row).',
  })
  async eraseCustomer(
    @Arg('id', () => ID) id: string,
    @Arg('reason', () => String) reason: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<Erasure> {
    const p = ctx.principal!;
    const out = await this.erasures.erase(fromGlobalId(id, 'Customer').id, reason, `${p.role}:${p.id}`);
    return toErasure(out.request, out.erasedNow);
  }

  @Authorized('admin')
  @Query(() => Erasure, { nullable: true, description: 'The erasure of a customer (global id), if one was made' })
  async erasure(@Arg('customerId', () => ID) customerId: string): Promise<Erasure | null> {
    const r = await this.erasures.requestFor(fromGlobalId(customerId, 'Customer').id);
    return r ? toErasure(r, false) : null;
  }

  @Authorized('admin')
  @Query(() => GraphQLJSONObject, {
    description:
      'Everything Earshot holds about one person (data subject access request), as JSON. Interactions come in pages of at most 5,000 (oldest first): `interactionsTotal` counts them all, `interactionsNext` (null on the last page) is the `interactionsAfter` of the next page. Without `interactionsFirst` or `interactionsAfter`, everything comes in one response when it holds at most 5,000 interactions, else the request is refused (BAD_USER_INPUT) with how to page. Listening items page the same way on their own (oldest opened first): `listeningItemsFirst`, `listeningItemsAfter`, `listeningItemsTotal`, `listeningItemsNext`; so do the company replies addressed to the person by name or address alone, which an erasure redacts with them (oldest first): `addressedRepliesFirst`, `addressedRepliesAfter`, `addressedRepliesTotal`, `addressedRepliesNext`. Every other list comes whole.',
  })
  customerDataExport(
    @Arg('id', () => ID) id: string,
    @Arg('interactionsAfter', () => String, { nullable: true }) interactionsAfter?: string | null,
    @Arg('interactionsFirst', () => Int, { nullable: true }) interactionsFirst?: number | null,
    @Arg('listeningItemsAfter', () => String, { nullable: true }) listeningItemsAfter?: string | null,
    @Arg('listeningItemsFirst', () => Int, { nullable: true }) listeningItemsFirst?: number | null,
    @Arg('addressedRepliesAfter', () => String, { nullable: true }) addressedRepliesAfter?: string | null,
    @Arg('addressedRepliesFirst', () => Int, { nullable: true }) addressedRepliesFirst?: number | null,
  ): Promise<Record<string, unknown>> {
    return this.exports.export(fromGlobalId(id, 'Customer').id, {
      interactionsAfter,
      interactionsFirst,
      listeningItemsAfter,
      listeningItemsFirst,
      addressedRepliesAfter,
      addressedRepliesFirst,
    });
  }

  @Authorized('admin', 'analyst')
  @Query(() => RetentionStatus)
  async retentionStatus(): Promise<RetentionStatus> {
    return toRetentionStatus(this.retention.status(), await this.retention.pending());
  }
}
