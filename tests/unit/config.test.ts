import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config.js';

const azurite =
  'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:1/devstoreaccount1';

describe('configuration', () => {
  it('reads a development configuration with the local key store', () => {
    const config = parseConfig({ AzureWebJobsStorage: azurite });
    expect(config.environment).toBe('development');
    expect(config.keys).toEqual({ provider: 'local', directory: '.labvault/keys' });
    expect(config.storage.kind).toBe('connectionString');
  });

  it('names a missing storage setting in one line', () => {
    expect(() => parseConfig({})).toThrowError(ConfigError);
    expect(() => parseConfig({})).toThrowError(/^Invalid setting AzureWebJobsStorage: is required/);
  });

  it('names an invalid value without echoing it', () => {
    const error = (() => {
      try {
        parseConfig({ AzureWebJobsStorage: azurite, LABVAULT_ENVIRONMENT: 'staging-secret-value' });
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(error?.message).toMatch(/^Invalid setting LABVAULT_ENVIRONMENT/);
    expect(error?.message).not.toContain('staging-secret-value');
    expect(error?.message.split('\n')).toHaveLength(1);
  });

  it('refuses the local key store and account keys in production', () => {
    expect(() =>
      parseConfig({ LABVAULT_ENVIRONMENT: 'production', AzureWebJobsStorage__accountName: 'labvaultprod' }),
    ).toThrowError(/LABVAULT_KEY_PROVIDER/);
    expect(() =>
      parseConfig({
        LABVAULT_ENVIRONMENT: 'production',
        LABVAULT_KEY_PROVIDER: 'keyvault',
        LABVAULT_KEY_VAULT_URL: 'https://v.vault.azure.net',
        AzureWebJobsStorage: azurite,
      }),
    ).toThrowError(/AzureWebJobsStorage: must not hold an account key/);
  });

  it('derives identity-based service URIs from the account name', () => {
    const config = parseConfig({
      LABVAULT_ENVIRONMENT: 'production',
      LABVAULT_KEY_PROVIDER: 'keyvault',
      LABVAULT_KEY_VAULT_URL: 'https://v.vault.azure.net',
      AzureWebJobsStorage__accountName: 'labvaultprod',
    });
    expect(config.storage).toEqual({
      kind: 'identity',
      blobServiceUri: 'https://labvaultprod.blob.core.windows.net',
      queueServiceUri: 'https://labvaultprod.queue.core.windows.net',
      tableServiceUri: 'https://labvaultprod.table.core.windows.net',
      secondary: {
        tableServiceUri: 'https://labvaultprod-secondary.table.core.windows.net',
        blobServiceUri: 'https://labvaultprod-secondary.blob.core.windows.net',
      },
    });
  });

  it('refuses loopback webhooks in production, a notice period under 7 days and links over 24 hours', () => {
    const production = {
      LABVAULT_ENVIRONMENT: 'production',
      LABVAULT_KEY_PROVIDER: 'keyvault',
      LABVAULT_KEY_VAULT_URL: 'https://v.vault.azure.net',
      AzureWebJobsStorage__accountName: 'labvaultprod',
    };
    expect(() => parseConfig({ ...production, LABVAULT_WEBHOOK_ALLOW_LOOPBACK: 'true' })).toThrowError(
      /LABVAULT_WEBHOOK_ALLOW_LOOPBACK/,
    );
    expect(() => parseConfig({ AzureWebJobsStorage: azurite, LABVAULT_TERMINATION_NOTICE_DAYS: '6' })).toThrowError(
      /LABVAULT_TERMINATION_NOTICE_DAYS/,
    );
    expect(() => parseConfig({ AzureWebJobsStorage: azurite, LABVAULT_EXPORT_LINK_HOURS: '25' })).toThrowError(
      /LABVAULT_EXPORT_LINK_HOURS/,
    );
    const local = parseConfig({
      AzureWebJobsStorage: azurite,
      LABVAULT_WEBHOOK_ALLOW_LOOPBACK: 'true',
      LABVAULT_TRUSTED_PROXIES: '10.0.0.1,10.0.0.2',
    });
    expect(local.outbound).toEqual({ allowLoopback: true, allowedPorts: [443, 8443] });
    expect(local.trustedProxies).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(local.terminationNoticeDays).toBe(30);
  });
});
