import { ApolloServer } from '@apollo/server';
import { GraphQLInt, GraphQLObjectType, GraphQLSchema } from 'graphql';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../config/config';
import { createLogger } from '../shared/logger';
import type { GraphQLContext } from './context';
import { makeFormatError } from './format-error';
import { costLimitPlugin, readBounds, startTimeBudget, withoutSuggestions } from './limits';

describe('the per-request time budget', () => {
  it('stops resolving fields once the operation has used up its budget, with TIME_BUDGET_EXCEEDED', async () => {
    let clock = 1_000_000;
    const schema = new GraphQLSchema({
      query: new GraphQLObjectType({
        name: 'Query',
        fields: {
          quick: { type: GraphQLInt, resolve: () => 1 },
          // stands for a slow resolver: the injected clock moves past the budget while it runs
          slow: { type: GraphQLInt, resolve: () => ((clock += 250), 2) },
          after: { type: GraphQLInt, resolve: () => 3 },
        },
      }),
    });
    const config = loadConfig({ NODE_ENV: 'test', EARSHOT_GRAPHQL_TIME_BUDGET_MS: '200' }).graphql;
    const server = new ApolloServer<GraphQLContext>({ schema, plugins: [costLimitPlugin(schema, config, () => clock)], formatError: makeFormatError(createLogger('silent')) });
    await server.start();
    try {
      const r = await server.executeOperation({ query: '{ quick slow after }' }, { contextValue: {} as GraphQLContext });
      const body = r.body.kind === 'single' ? r.body.singleResult : null;
      expect(body?.data).toEqual({ quick: 1, slow: 2, after: null });
      expect(body?.errors?.[0]?.extensions?.code).toBe('TIME_BUDGET_EXCEEDED');
      expect(body?.errors?.[0]?.path).toEqual(['after']);
      const fresh = await server.executeOperation({ query: '{ quick after }' }, { contextValue: {} as GraphQLContext });
      expect(fresh.body.kind === 'single' ? fresh.body.singleResult.errors : 'streamed').toBeUndefined();
    } finally {
      await server.stop();
    }
  });
});

describe('the time budget on its default clock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is not used up by the host clock stepping an hour forward mid-operation (it counts on the monotonic clock)', async () => {
    // the host's clock, as NTP or a VM restored from a snapshot moves it; performance.now() is left alone
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    const schema = new GraphQLSchema({
      query: new GraphQLObjectType({
        name: 'Query',
        fields: {
          step: { type: GraphQLInt, resolve: () => (vi.setSystemTime(Date.now() + 3_600_000), 1) },
          after: { type: GraphQLInt, resolve: () => 2 },
        },
      }),
    });
    const config = loadConfig({ NODE_ENV: 'test', EARSHOT_GRAPHQL_TIME_BUDGET_MS: '10000' }).graphql;
    const server = new ApolloServer<GraphQLContext>({ schema, plugins: [costLimitPlugin(schema, config)], formatError: makeFormatError(createLogger('silent')) });
    await server.start();
    try {
      const r = await server.executeOperation({ query: '{ step after }' }, { contextValue: {} as GraphQLContext });
      // before: { step: 1, after: null } with TIME_BUDGET_EXCEEDED, the step counted as time spent
      expect(r.body.kind === 'single' ? r.body.singleResult : null).toEqual({ data: { step: 1, after: 2 } });
    } finally {
      await server.stop();
    }
  });
});

describe('field suggestions', () => {
  it('are cut out of messages, whatever they suggest', () => {
    expect(withoutSuggestions('Cannot query field "customerz" on type "Query". Did you mean "customers" or "customer"?')).toBe('Cannot query field "customerz" on type "Query".');
    expect(withoutSuggestions('Value "NEGATIV" does not exist in "SentimentLabel" enum. Did you mean the enum value "NEGATIVE"?')).toBe('Value "NEGATIV" does not exist in "SentimentLabel" enum.');
  });
});

describe('the time budget named in messages', () => {
  it('is the configured one, not a difference of clock readings', () => {
    // (start + 300) - start on this reading is 299.9999999999709: CI showed "a time budget of
    // 300.00000000000045 ms" on a process up for a long time
    const start = 262094.53819676655;
    const context = {};
    startTimeBudget(context, loadConfig({ NODE_ENV: 'test', EARSHOT_GRAPHQL_TIME_BUDGET_MS: '300' }).graphql, () => start);
    expect(readBounds(context, 1000)!.readDeadline.budgetMs).toBe(300);
  });
});
