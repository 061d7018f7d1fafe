// bench:graphql's PostGraphile: the amber preset, and the one relation its introspection can no
// longer see. interaction.customer_id has no foreign key since migration
// InteractionCustomerCheckPerBatch (ingest checks the customers once per batch instead), so
// PostGraphile is told of it with a smart tag, and Customer.interactionsByCustomerId stays.
import { PostGraphileAmberPreset } from 'postgraphile/presets/amber';
import { jsonPgSmartTags } from 'postgraphile/utils';

export default {
  extends: [PostGraphileAmberPreset],
  plugins: [
    jsonPgSmartTags({
      version: 1,
      config: { class: { interaction: { tags: { foreignKey: '(customer_id) references customer (id)' } } } },
    }),
  ],
};
