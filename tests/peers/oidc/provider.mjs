// An OpenID provider for the inbox's sign-in tests: npm's `oidc-provider` (a certified
// implementation), on loopback, with its own development login and consent pages.
//
//   node provider.mjs PORT CLIENT_ID CLIENT_SECRET
//
// One client, plangate's inbox: the authorization code flow with PKCE (S256), its redirect URI
// the inbox's callback on loopback (a native client, so that any loopback port is allowed, as
// RFC 8252 asks: the tests serve the inbox on a port the system picks). Its login page takes
// any password; the accounts it knows are below, each with a `groups` claim (scope `groups`).
// Access tokens are opaque (the inbox asks the userinfo endpoint about them), except those asked
// for the resource `urn:plangate:inbox`, which are JWTs carrying the person's claims.
import Provider from "oidc-provider";

const [port, clientId, clientSecret] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = "urn:plangate:inbox";

// The login is the account's id, its `sub`: an opaque id, as providers give them.
const ACCOUNTS = {
  "u-ana-7f3e": { name: "Ana Lopez", email: "ana@example.com", groups: ["payments-leads"] },
  "u-ben-41c2": { name: "Ben Okafor", email: "ben@example.com", groups: ["payments-leads"] },
  "u-cy-9d05": { name: "Cy Park", email: "cy@example.com", groups: ["support"] },
};

function claimsOf(id) {
  const account = ACCOUNTS[id];
  return {
    sub: id,
    name: account.name,
    preferred_username: account.email.split("@")[0],
    email: account.email,
    email_verified: true,
    groups: account.groups,
  };
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      application_type: "native",
      redirect_uris: ["http://127.0.0.1/auth/callback"],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username"],
    email: ["email", "email_verified"],
    groups: ["groups"],
  },
  scopes: ["openid", "offline_access", "profile", "email", "groups"],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== RESOURCE) throw new Error(`unknown resource ${indicator}`);
        return { scope: "openid profile email groups", audience: clientId, accessTokenFormat: "jwt" };
      },
    },
  },
  extraTokenClaims: (_ctx, token) => {
    if (token.kind !== "AccessToken" || !token.accountId || !token.resourceServer) return undefined;
    const { name, email, groups } = claimsOf(token.accountId);
    return { name, email, groups };
  },
  async findAccount(_ctx, id) {
    if (!ACCOUNTS[id]) return undefined;
    return { accountId: id, claims: async () => claimsOf(id) };
  },
  ttl: { AccessToken: 600, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});

provider.listen(Number(port), "127.0.0.1", () => {
  console.log(`oidc-provider on ${issuer}`);
});
