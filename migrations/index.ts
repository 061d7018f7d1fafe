import { Initial1764000000000 } from './1764000000000-Initial';

/** Every migration, in order. Listed by hand so the compiled build needs no glob. */
export const migrations = [Initial1764000000000];
