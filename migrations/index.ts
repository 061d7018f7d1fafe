import { Initial1764000000000 } from './1764000000000-Initial';
import { TaxonomyRetag1764200000000 } from './1764200000000-TaxonomyRetag';
import { IdentityResolution1764100000000 } from './1764100000000-IdentityResolution';
import { CrmSync1764300000000 } from './1764300000000-CrmSync';
import { ListeningGap1764400000000 } from './1764400000000-ListeningGap';
import { SentimentModel1765000000000 } from './1765000000000-SentimentModel';
import { SafeDisplayNames1765200000000 } from './1765200000000-SafeDisplayNames';
import { LiveEvents1765500000000 } from './1765500000000-LiveEvents';
import { ListeningItemHistory1765500100000 } from './1765500100000-ListeningItemHistory';
import { PrivacyErasure1765600000000 } from './1765600000000-PrivacyErasure';

/** Every migration, in order. Listed by hand so the compiled build needs no glob. */
export const migrations = [Initial1764000000000, IdentityResolution1764100000000, TaxonomyRetag1764200000000, CrmSync1764300000000, ListeningGap1764400000000, SentimentModel1765000000000, SafeDisplayNames1765200000000, LiveEvents1765500000000, ListeningItemHistory1765500100000, PrivacyErasure1765600000000];
