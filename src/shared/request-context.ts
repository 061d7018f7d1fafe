import { AsyncLocalStorage } from 'node:async_hooks';

/** The request an async call chain serves: lets logs and query counts name their request. */
export const requestContext = new AsyncLocalStorage<{ requestId: string }>();
