// openid-client v6 at its defaults against a running Commons ID.
//
// Driven by cmd/commonsid/interop_test.go. Input in the environment:
// INTEROP_ISSUER, INTEROP_CLIENT_ID, INTEROP_CLIENT_SECRET,
// INTEROP_REDIRECT_URI, INTEROP_POST_LOGOUT_REDIRECT_URI.
//
// The script speaks JSON lines on stdout. {"op":"authorize","url":…} or
// {"op":"visit","url":…} asks the driver to play the browser; the driver
// answers with one line on stdin, the URL the browser was sent back to.
// {"op":"step","step":…,"ok":…} reports one step: ok with what was seen,
// or not ok with the OAuth error code ("error") the library surfaced.
//
// The client is configured as openid-client's README does: discovery with
// the client secret and no client-authentication argument (so the library's
// default, client_secret_post, is used). The only option added is
// allowInsecureRequests, because the test issuer is plain http on loopback.
import * as client from 'openid-client'
import * as readline from 'node:readline'

const env = (k) => {
  const v = process.env[k]
  if (!v) throw new Error(`${k} is not set`)
  return v
}
const issuer = env('INTEROP_ISSUER')
const clientId = env('INTEROP_CLIENT_ID')
const clientSecret = env('INTEROP_CLIENT_SECRET')
const redirectUri = env('INTEROP_REDIRECT_URI')
const postLogoutUri = env('INTEROP_POST_LOGOUT_REDIRECT_URI')
const scope = 'openid profile email offline_access'

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const send = (o) => process.stdout.write(JSON.stringify(o) + '\n')

// browse asks the driver to take the browser to url and returns where the
// browser was sent back.
async function browse(op, url) {
  send({ op, url: url.href })
  const { value, done } = await lines.next()
  if (done) throw new Error('driver closed stdin')
  return new URL(value.trim())
}

// describe reduces whatever the library threw to the OAuth error code it
// carries and a readable message.
function describe(err) {
  let error = err?.error
  if (!error && Array.isArray(err?.cause)) {
    // WWWAuthenticateChallengeError: the code is a challenge parameter.
    error = err.cause.find((c) => c?.parameters?.error)?.parameters?.error
  }
  if (!error && err?.cause?.error) error = err.cause.error
  const status = err?.status ?? err?.response?.status
  const parts = [err?.name, err?.code, status, err?.message, err?.error_description ?? err?.cause?.error_description, err?.cause instanceof Error ? `${err.cause.name}: ${err.cause.message}` : undefined]
  return { error: error ?? err?.code ?? 'exception', message: parts.filter((p) => p !== undefined && p !== '').join(': ') }
}

// step runs fn and reports its outcome; a thrown error is reported, not fatal.
async function step(name, fn) {
  try {
    const data = (await fn()) ?? {}
    send({ op: 'step', step: name, ok: true, ...data })
    return data
  } catch (err) {
    send({ op: 'step', step: name, ok: false, ...describe(err) })
    return undefined
  }
}

// skipped reports a step that could not run because an earlier one failed.
const skipped = (name, because) => send({ op: 'step', step: name, ok: false, error: 'not_run', message: `not run: ${because} failed` })

let config
await step('discovery', async () => {
  config = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, {
    execute: [client.allowInsecureRequests],
  })
  return { issuer: config.serverMetadata().issuer }
})
if (!config) process.exit(0)

// Code + PKCE, with state and nonce.
const verifier = client.randomPKCECodeVerifier()
const state = client.randomState()
const nonce = client.randomNonce()
const authURL = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope,
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce,
})
const callback = await browse('authorize', authURL)

let tokens
await step('exchange', async () => {
  tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
  const claims = tokens.claims()
  return { sub: claims.sub, refresh_token: !!tokens.refresh_token, access_token: !!tokens.access_token }
})

if (tokens) {
  const sub = tokens.claims().sub
  await step('userinfo', async () => {
    const ui = await client.fetchUserInfo(config, tokens.access_token, sub)
    return { sub: ui.sub }
  })

  let refreshed
  await step('refresh', async () => {
    refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
    return { rotated: !!refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, access_token: !!refreshed.access_token }
  })
  const live = refreshed ?? tokens

  await step('introspect', async () => {
    const r = await client.tokenIntrospection(config, live.access_token)
    return { active: r.active, client_id: r.client_id, sub: r.sub }
  })
  await step('revoke', async () => {
    await client.tokenRevocation(config, live.access_token)
  })
  await step('introspect_revoked', async () => {
    const r = await client.tokenIntrospection(config, live.access_token)
    return { active: r.active }
  })
  await step('userinfo_revoked', async () => {
    const ui = await client.fetchUserInfo(config, live.access_token, sub)
    return { sub: ui.sub }
  })
  if (live.refresh_token) {
    await step('revoke_refresh', async () => {
      await client.tokenRevocation(config, live.refresh_token)
    })
    await step('dead_refresh', async () => {
      await client.refreshTokenGrant(config, live.refresh_token)
    })
  } else {
    skipped('revoke_refresh', 'refresh')
    skipped('dead_refresh', 'refresh')
  }
  if (refreshed) {
    await step('rotated_refresh', async () => {
      await client.refreshTokenGrant(config, tokens.refresh_token)
    })
  } else {
    skipped('rotated_refresh', 'refresh')
  }
} else {
  for (const s of ['userinfo', 'refresh', 'introspect', 'revoke', 'introspect_revoked', 'userinfo_revoked', 'revoke_refresh', 'dead_refresh', 'rotated_refresh']) {
    skipped(s, 'exchange')
  }
}

await step('reused_code', async () => {
  await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
})

// A second authorization whose code is exchanged with the wrong verifier.
{
  const v = client.randomPKCECodeVerifier()
  const s = client.randomState()
  const cb = await browse('authorize', client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(v),
    code_challenge_method: 'S256',
    state: s,
  }))
  await step('bad_verifier', async () => {
    await client.authorizationCodeGrant(config, cb, {
      pkceCodeVerifier: client.randomPKCECodeVerifier(),
      expectedState: s,
    })
  })
}

// openid-client's README flow: PKCE and, because the server supports PKCE,
// neither state nor nonce.
await step('readme_flow', async () => {
  const v = client.randomPKCECodeVerifier()
  const parameters = {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(v),
    code_challenge_method: 'S256',
  }
  let s
  if (!config.serverMetadata().supportsPKCE()) {
    s = client.randomState()
    parameters.state = s
  }
  const cb = await browse('authorize', client.buildAuthorizationUrl(config, parameters))
  const t = await client.authorizationCodeGrant(config, cb, { pkceCodeVerifier: v, expectedState: s, idTokenExpected: true })
  const ui = await client.fetchUserInfo(config, t.access_token, t.claims().sub)
  return { sub: ui.sub, state_sent: s !== undefined }
})

// RP-initiated logout with the ID token of the first sign-in.
if (tokens?.id_token) {
  await step('logout', async () => {
    const s = client.randomState()
    const landing = await browse('visit', client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: postLogoutUri,
      state: s,
    }))
    const back = landing.origin + landing.pathname
    if (back !== postLogoutUri) throw new Error(`logout ended at ${landing.href}, not at ${postLogoutUri}`)
    if (landing.searchParams.get('state') !== s) throw new Error(`logout returned state ${landing.searchParams.get('state')}, want ${s}`)
    return { landing: back }
  })
} else {
  skipped('logout', 'exchange')
}
send({ op: 'done' })
process.exit(0)
