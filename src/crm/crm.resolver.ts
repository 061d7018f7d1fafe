import { Arg, Authorized, Mutation, Query, Resolver } from 'type-graphql';
import type { CrmSyncService } from './crm-sync.service';
import type { CrmWritebackService } from './crm-writeback.service';
import { CrmSyncMode, CrmSyncStatus, CrmSystemEnum, type CrmObjectSyncStatus, type CrmSyncStatusEnum } from './crm.type';

/** CRM sync state and control. */
@Resolver()
export class CrmResolver {
  constructor(
    private readonly sync: CrmSyncService,
    private readonly writeback: CrmWritebackService,
  ) {}

  @Authorized('admin', 'analyst')
  @Query(() => CrmSyncStatus, { description: 'Cursors, last run, counts, errors and API budget per CRM and object' })
  crmSyncStatus(): Promise<CrmSyncStatus> {
    return this.status();
  }

  @Authorized('admin')
  @Mutation(() => CrmSyncStatus, { description: 'Starts a sync run now (in the background; poll crmSyncStatus). A run already going is left alone.' })
  async triggerCrmSync(
    @Arg('system', () => CrmSystemEnum) system: CrmSystemEnum,
    @Arg('mode', () => CrmSyncMode, { defaultValue: CrmSyncMode.INCREMENTAL }) mode: CrmSyncMode,
  ): Promise<CrmSyncStatus> {
    this.sync.trigger(system, mode);
    return this.status();
  }

  private async status(): Promise<CrmSyncStatus> {
    const [states, pending] = await Promise.all([this.sync.states(), this.writeback.pending()]);
    return {
      systems: this.sync.systems as CrmSystemEnum[],
      running: this.sync.systems.filter((s) => this.sync.isRunning(s)) as CrmSystemEnum[],
      objects: states.map((s): CrmObjectSyncStatus => ({ ...s, system: s.system as CrmSystemEnum, status: s.status as CrmSyncStatusEnum, mode: s.mode as CrmSyncMode | null })),
      budgets: this.sync.budgets().map((b) => ({ system: b.system as CrmSystemEnum, usedToday: b.usedToday, dailyLimit: b.daily, per10s: b.per10s, exhaustedUntil: b.exhaustedUntil, pausedUntil: latest(b.pausedUntil, b.exhaustedUntil) })),
      writeBackPending: pending,
    };
  }
}

/** The later of two times, or null when neither is set. */
function latest(a: Date | null, b: Date | null): Date | null {
  if (!a || !b) return a ?? b;
  return a > b ? a : b;
}
