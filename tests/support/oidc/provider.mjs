// A real OpenID Connect provider for the SSO tests: oidc-provider (OpenID Certified) with its
// own login and consent pages, PKCE required and RP-initiated logout. Configured by one JSON
// argument: {port, issuer, keyId, client: {...}, accounts: {id: {claims}}}. A fresh RSA signing
// key is generated at each start under `keyId`, so restarting with another keyId rotates it.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: config.keyId, use: 'sig', alg: 'RS256' };

const provider = new Provider(config.issuer, {
  clients: [
    {
      client_id: config.client.id,
      client_secret: config.client.secret,
      redirect_uris: config.client.redirectUris,
      post_logout_redirect_uris: config.client.postLogoutRedirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(16).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups', 'org'],
  },
  // Unknown accounts cannot sign in: the login page's name must be one of `accounts`.
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  pkce: { required: () => true },
});
provider.on('end_session.success', () => console.log('end_session.success'));
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(config.port, '127.0.0.1', () => console.log(`listening ${config.issuer}`));
