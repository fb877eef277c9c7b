// A browser single-page app: a public client (token_endpoint_auth_method
// none) with no server of its own, using oauth4webapi in the page. Every
// call to Commons ID is a cross-origin fetch, so each one needs CORS.
//
// The page runs in phases across top-level navigations, keeping its state in
// sessionStorage: sign-in (code + PKCE), then a second authorization whose
// code is exchanged with a wrong verifier, then RP-initiated logout. When it
// is finished it writes every step's outcome as JSON into #results and adds
// #done. Its configuration (issuer, client_id, redirect and logout URIs, and
// the server metadata as a fallback) comes from /config.json.
import * as oauth from '/oauth4webapi.js'

const cfg = await (await fetch('/config.json')).json()
const client = { client_id: cfg.client_id }
const clientAuth = oauth.None()
const insecure = { [oauth.allowInsecureRequests]: true } // the test issuer is http on loopback

const store = {
  get: (k) => JSON.parse(sessionStorage.getItem(k) ?? 'null'),
  set: (k, v) => sessionStorage.setItem(k, JSON.stringify(v)),
}
const results = store.get('results') ?? []

function describe(err) {
  let error = err?.error
  if (!error && Array.isArray(err?.cause)) error = err.cause.find((c) => c?.parameters?.error)?.parameters?.error
  if (!error && err?.cause?.error) error = err.cause.error
  // A request refused by CORS reaches the page only as a TypeError.
  if (!error && err instanceof TypeError) error = 'network_error'
  const parts = [err?.name, err?.code, err?.status, err?.message, err?.error_description ?? err?.cause?.error_description, err?.cause instanceof Error ? `${err.cause.name}: ${err.cause.message}` : undefined]
  return { error: error ?? err?.code ?? 'exception', message: parts.filter((p) => p !== undefined && p !== '').join(': ') }
}

async function step(name, fn) {
  try {
    const data = (await fn()) ?? {}
    results.push({ op: 'step', step: name, ok: true, ...data })
    return data
  } catch (err) {
    results.push({ op: 'step', step: name, ok: false, ...describe(err) })
    return undefined
  } finally {
    store.set('results', results)
  }
}

// skipped reports a step that could not run because an earlier one failed.
function skipped(name, because) {
  results.push({ op: 'step', step: name, ok: false, error: 'not_run', message: `not run: ${because} failed` })
  store.set('results', results)
}

function finish() {
  const pre = document.createElement('pre')
  pre.id = 'results'
  pre.textContent = JSON.stringify(results)
  document.body.append(pre)
  const done = document.createElement('div')
  done.id = 'done'
  document.body.append(done)
}

// Discovery from the page (CORS at the discovery document); when the page
// cannot read it, the metadata the test fetched keeps the rest going so
// that each later endpoint is still tried.
async function metadata() {
  const cached = store.get('as')
  if (cached) return cached
  const issuer = new URL(cfg.issuer)
  let as
  await step('discovery', async () => {
    as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }))
    return { issuer: as.issuer }
  })
  store.set('as', as ?? cfg.metadata)
  return as ?? cfg.metadata
}

async function authorize(as, phase) {
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const nonce = oauth.generateRandomNonce()
  store.set('flow', { phase, verifier, state, nonce })
  const u = new URL(as.authorization_endpoint)
  u.search = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: cfg.redirect_uri,
    response_type: 'code',
    scope: 'openid profile offline_access',
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  })
  location.assign(u.href)
}

const exchange = async (as, params, verifier, nonce) =>
  oauth.processAuthorizationCodeResponse(as, client,
    await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, cfg.redirect_uri, verifier, insecure),
    { expectedNonce: nonce, requireIdToken: true })
const refresh = async (as, rt) =>
  oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, clientAuth, rt, insecure))
const userinfo = async (as, at, sub) =>
  oauth.processUserInfoResponse(as, client, sub, await oauth.userInfoRequest(as, client, at, insecure))
const revoke = async (as, token) =>
  oauth.processRevocationResponse(await oauth.revocationRequest(as, client, clientAuth, token, insecure))

async function main() {
  const as = await metadata()
  const flow = store.get('flow')
  const here = new URL(location.href)

  if (here.pathname === '/logged-out') {
    await step('logout', async () => {
      const got = here.searchParams.get('state')
      if (got !== flow?.state) throw new Error(`logout returned state ${got}, want ${flow?.state}`)
      return { landing: here.origin + here.pathname }
    })
    return finish()
  }

  if (!flow) return authorize(as, 'signin')

  let params
  await step(flow.phase === 'signin' ? 'authorize' : 'authorize_again', async () => {
    params = oauth.validateAuthResponse(as, client, here, flow.state)
  })

  if (flow.phase === 'signin') {
    let tokens
    if (params) {
      await step('exchange', async () => {
        tokens = await exchange(as, params, flow.verifier, flow.nonce)
        const claims = oauth.getValidatedIdTokenClaims(tokens)
        return { sub: claims.sub, refresh_token: !!tokens.refresh_token, access_token: !!tokens.access_token }
      })
    }
    if (tokens) {
      const sub = oauth.getValidatedIdTokenClaims(tokens).sub
      store.set('id_token', tokens.id_token)
      await step('userinfo', async () => ({ sub: (await userinfo(as, tokens.access_token, sub)).sub }))
      let refreshed
      await step('refresh', async () => {
        refreshed = await refresh(as, tokens.refresh_token)
        return { rotated: !!refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, access_token: !!refreshed.access_token }
      })
      const live = refreshed ?? tokens
      await step('revoke', () => revoke(as, live.access_token))
      await step('userinfo_revoked', async () => ({ sub: (await userinfo(as, live.access_token, sub)).sub }))
      await step('revoke_refresh', () => revoke(as, live.refresh_token))
      await step('dead_refresh', () => refresh(as, live.refresh_token))
      if (refreshed) await step('rotated_refresh', () => refresh(as, tokens.refresh_token))
      else skipped('rotated_refresh', 'refresh')
    } else {
      for (const s of ['exchange', 'userinfo', 'refresh', 'revoke', 'userinfo_revoked', 'revoke_refresh', 'dead_refresh', 'rotated_refresh']) {
        if (!results.some((r) => r.step === s)) skipped(s, params ? 'exchange' : 'authorize')
      }
    }
    if (params) await step('reused_code', () => exchange(as, params, flow.verifier, flow.nonce))
    else skipped('reused_code', 'authorize')
    return authorize(as, 'bad_verifier')
  }

  if (flow.phase === 'bad_verifier') {
    if (params) await step('bad_verifier', () => exchange(as, params, oauth.generateRandomCodeVerifier(), flow.nonce))
    else skipped('bad_verifier', 'authorize_again')
    const idToken = store.get('id_token')
    if (!idToken) {
      skipped('logout', 'exchange')
      return finish()
    }
    const state = oauth.generateRandomState()
    store.set('flow', { phase: 'logout', state })
    const u = new URL(as.end_session_endpoint)
    u.search = new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: cfg.post_logout_redirect_uri, state })
    return location.assign(u.href)
  }
  finish()
}

main().catch((err) => {
  results.push({ op: 'step', step: 'page', ok: false, ...describe(err) })
  finish()
})
