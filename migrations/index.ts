import { Initial1764000000000 } from './1764000000000-Initial';
import { TaxonomyRetag1764200000000 } from './1764200000000-TaxonomyRetag';
import { IdentityResolution1764100000000 } from './1764100000000-IdentityResolution';
import { CrmSync1764300000000 } from './1764300000000-CrmSync';
import { ListeningGap1764400000000 } from './1764400000000-ListeningGap';
import { SentimentModel1765000000000 } from './1765000000000-SentimentModel';
import { SafeDisplayNames1765200000000 } from './1765200000000-SafeDisplayNames';
import { OneRollupMechanism1765400000000 } from './1765400000000-OneRollupMechanism';
import { OutboxPerTransaction1765400000001 } from './1765400000001-OutboxPerTransaction';
import { InteractionIdentityColumn1765400000002 } from './1765400000002-InteractionIdentityColumn';
import { InPlaceSummaryUpdates1765400000003 } from './1765400000003-InPlaceSummaryUpdates';
import { DropUnusedIngestIndexes1765400000004 } from './1765400000004-DropUnusedIngestIndexes';
import { WritebackTriggerPerStatement1765400000005 } from './1765400000005-WritebackTriggerPerStatement';
import { OutboxTraceAndModel1765400000006 } from './1765400000006-OutboxTraceAndModel';
import { LiveEvents1765500000000 } from './1765500000000-LiveEvents';
import { ListeningItemHistory1765500100000 } from './1765500100000-ListeningItemHistory';
import { PrivacyErasure1765600000000 } from './1765600000000-PrivacyErasure';
import { InteractionComplaintUnhappy1766100000000 } from './1766100000000-InteractionComplaintUnhappy';
import { CheaperOutboxRender1766200000000 } from './1766200000000-CheaperOutboxRender';
import { ImpliedOpenedEvent1766800000000 } from './1766800000000-ImpliedOpenedEvent';
import { CustomerSummaryOnRow1766800000001 } from './1766800000001-CustomerSummaryOnRow';
import { DropEscalationIndex1766900000000 } from './1766900000000-DropEscalationIndex';
import { ExplanationAsJson1766900000001 } from './1766900000001-ExplanationAsJson';
import { InlinedOutboxTimestamp1767000000000 } from './1767000000000-InlinedOutboxTimestamp';
import { MergeAndErasureByIndex1767100000000 } from './1767100000000-MergeAndErasureByIndex';
import { CustomerTrendDays1767100000001 } from './1767100000001-CustomerTrendDays';

/** Every migration, in order. Listed by hand so the compiled build needs no glob. */
export const migrations = [Initial1764000000000, IdentityResolution1764100000000, TaxonomyRetag1764200000000, CrmSync1764300000000, ListeningGap1764400000000, SentimentModel1765000000000, SafeDisplayNames1765200000000, OneRollupMechanism1765400000000, OutboxPerTransaction1765400000001, InteractionIdentityColumn1765400000002, InPlaceSummaryUpdates1765400000003, DropUnusedIngestIndexes1765400000004, WritebackTriggerPerStatement1765400000005, OutboxTraceAndModel1765400000006, LiveEvents1765500000000, ListeningItemHistory1765500100000, PrivacyErasure1765600000000, InteractionComplaintUnhappy1766100000000, CheaperOutboxRender1766200000000, ImpliedOpenedEvent1766800000000, CustomerSummaryOnRow1766800000001, DropEscalationIndex1766900000000, ExplanationAsJson1766900000001, InlinedOutboxTimestamp1767000000000, MergeAndErasureByIndex1767100000000, CustomerTrendDays1767100000001];
