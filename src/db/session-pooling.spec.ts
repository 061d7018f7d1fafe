import { describe, expect, it } from 'vitest';
import { sharedServerProcesses } from './session-pooling';

describe('sharedServerProcesses', () => {
  it('finds nothing when each session stays on a server process of its own (PostgreSQL itself, session pooling)', () => {
    expect(sharedServerProcesses([101, 101, 101, 101], [102, 102, 102, 102])).toBeNull();
  });

  it('names the server process two sessions shared (a pooler handing out the last connection freed)', () => {
    expect(sharedServerProcesses([101, 101, 101, 101], [101, 101, 101, 101])).toBe('two sessions open at once ran on one PostgreSQL server process, pid 101');
  });

  it("names the server processes one session's statements ran on (a pooler handing out connections in turn)", () => {
    expect(sharedServerProcesses([101, 102, 101, 102], [103, 103, 103, 103])).toBe('the statements of one session ran on PostgreSQL server processes 101, 102');
    expect(sharedServerProcesses([101, 101, 101, 101], [102, 103, 102, 103])).toBe('the statements of one session ran on PostgreSQL server processes 102, 103');
  });
});
