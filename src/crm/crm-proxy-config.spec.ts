import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config';

// The proxy variables every Salesforce call follows, read as Node's NODE_USE_ENV_PROXY and undici's
// EnvHttpProxyAgent read them (the transport hands them to EnvHttpProxyAgent, never process.env).
const sf = { EARSHOT_SF_USERNAME: 'u', EARSHOT_SF_PASSWORD: 'p' };

describe('Salesforce proxy settings', () => {
  it('are none without proxy variables', () => {
    expect(loadConfig(sf).crm.salesforce!.proxy).toEqual({ http: null, https: null, noProxy: null });
  });

  it('read lower case before upper case, each scheme on its own, and NO_PROXY as given', () => {
    const c = loadConfig({ ...sf, HTTP_PROXY: 'http://upper:3128', http_proxy: 'http://lower:3128', HTTPS_PROXY: 'https://secure:3129', NO_PROXY: '.internal,10.0.0.1' });
    expect(c.crm.salesforce!.proxy).toEqual({ http: 'http://lower:3128', https: 'https://secure:3129', noProxy: '.internal,10.0.0.1' });
    expect(loadConfig({ ...sf, no_proxy: '*', NO_PROXY: 'x' }).crm.salesforce!.proxy.noProxy).toBe('*');
  });

  it('refuse a proxy that is not an http(s) URL, naming the variable, when Salesforce is on', () => {
    expect(() => loadConfig({ ...sf, HTTPS_PROXY: 'socks5://proxy:1080' })).toThrow(/HTTPS_PROXY: expected an http\(s\) proxy URL/);
    expect(() => loadConfig({ ...sf, http_proxy: 'proxy:3128' })).toThrow(/http_proxy: expected an http\(s\) proxy URL/);
    // not read at all without Salesforce
    expect(() => loadConfig({ HTTPS_PROXY: 'socks5://proxy:1080' })).not.toThrow();
  });
});
