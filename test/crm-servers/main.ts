import { HubSpotServer } from './hubspot/server';
import { SalesforceServer } from './salesforce/server';

/**
 * Starts both local CRM servers with generated data, for the demo and for manual poking:
 *   node dist/test/crm-servers/main.js [--sf-port 8711] [--hs-port 8712] [--contacts 500]
 * Prints the URLs and credentials as one JSON line, then runs until SIGINT/SIGTERM.
 */
export async function startCrmServers(opts: { sfPort?: number; hsPort?: number; contacts?: number } = {}) {
  const contacts = opts.contacts ?? 500;
  const sf = new SalesforceServer();
  const accounts = sf.store.generateAccounts(Math.max(1, Math.ceil(contacts / 10)));
  sf.store.generateContacts(contacts, { accountIds: accounts.map((a) => a.Id) });
  sf.store.generateLeads(Math.ceil(contacts / 5));
  const hs = new HubSpotServer();
  const companies = hs.store.generateCompanies(Math.max(1, Math.ceil(contacts / 10)));
  hs.store.generateContacts(contacts, { companyIds: companies.map((c) => c.id) });
  const [sfUp, hsUp] = await Promise.all([sf.start(opts.sfPort ?? 0), hs.start(opts.hsPort ?? 0)]);
  return {
    salesforce: sf,
    hubspot: hs,
    info: {
      salesforce: { loginUrl: sfUp.url, clientId: sf.options.clientId, clientSecret: sf.options.clientSecret, username: sf.options.users[0].username, password: sf.options.users[0].password },
      hubspot: { basePath: hsUp.url, accessToken: hs.options.privateAppTokens[0], clientId: hs.options.clientId, clientSecret: hs.options.clientSecret },
    },
  };
}

async function main(): Promise<void> {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const { salesforce, hubspot, info } = await startCrmServers({ sfPort: arg('--sf-port') ?? 8711, hsPort: arg('--hs-port') ?? 8712, contacts: arg('--contacts') });
  process.stdout.write(`${JSON.stringify(info)}\n`);
  const stop = () => void Promise.all([salesforce.stop(), hubspot.stop()]).then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
