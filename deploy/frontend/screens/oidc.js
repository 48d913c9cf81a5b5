/* global location, history, localStorage, crypto, btoa, TextEncoder */
import { request } from '../api.js'
import { API_BASE } from '../config.js'
import { errorBox, field, formatDate, h, replaceChildren, showError, submitForm } from '../dom.js'
import { friendlyMessage } from '../errors.js'
import { secondFactorStep } from './auth.js'

// Sign-in with an identity provider. The browser goes to the provider by a top-level visit to the
// API's /start; the provider sends it back to the API's callback, which answers with a one-time
// code in this page's address (#/oidc?code=…). This page then POSTs the code with fetch, so the
// session cookies are set by a request from the frontend's own context (in its cookie partition).
//
// The browser that starts a sign-in keeps a random verifier and sends its SHA-256 to the API; the
// exchange sends the verifier back. A code that lands in a browser which started nothing (an
// attacker's own finished sign-in, sent as a link so that the victim works in the attacker's
// account) is never exchanged here, and the API refuses it with any other verifier. The verifier
// is in localStorage, not the tab's sessionStorage: the provider may send the person back in
// another tab (a mailed sign-in link, a switch to its app). It lives as long as the API's flow.
const VERIFIER_KEY = 'oidc-verifier'
const VERIFIER_TTL_MS = 10 * 60_000
const SECURE_PAGE_NEEDED = 'Signing in with an identity provider needs a secure page: open this site over https (or on localhost).'

const oidcApi = {
  providers: () => request('GET', '/api/auth/oidc/providers', undefined, { refresh: false }),
  exchange: (code, verifier) => request('POST', '/api/auth/oidc/exchange', { code, verifier }, { refresh: false }),
  link: (provider, challenge) => request('POST', `/api/auth/oidc/${encodeURIComponent(provider)}/link?challenge=${challenge}`),
  identities: () => request('GET', '/api/auth/oidc/identities'),
  unlink: (identityId) => request('DELETE', `/api/auth/oidc/identities/${encodeURIComponent(identityId)}`),
  setPassword: (newPassword) => request('POST', '/api/auth/password/set', { newPassword }),
}

/** What the callback's `error` values mean, in words. */
const CALLBACK_ERRORS = {
  invalid_state: 'That sign-in link has expired or was already used. Please try again.',
  provider_refused: 'The identity provider did not sign you in.',
  verification_failed: 'The identity provider’s answer could not be verified. Please try again.',
  unknown_provider: 'That identity provider is not available.',
  sign_in_first: 'Sign in first, then link the identity from your Account page.',
}

const startUrl = (provider) => `${API_BASE}/api/auth/oidc/${encodeURIComponent(provider.id)}/start`

const base64url = (bytes) => btoa(String.fromCharCode(...bytes)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')

/**
 * A new verifier for this browser (replacing any earlier one); answers the challenge the API keeps.
 * Null on a page that is not a secure context (plain http off localhost), which has no SHA-256.
 */
async function newChallenge () {
  if (crypto.subtle === undefined) return null
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)))
  localStorage.setItem(VERIFIER_KEY, JSON.stringify({ verifier, expires: Date.now() + VERIFIER_TTL_MS }))
  return base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))))
}

/** This browser's verifier, once: a landing uses it up whatever the exchange answers. */
function takeVerifier () {
  const stored = localStorage.getItem(VERIFIER_KEY)
  localStorage.removeItem(VERIFIER_KEY)
  try {
    const { verifier, expires } = JSON.parse(stored) ?? {}
    return typeof verifier === 'string' && expires > Date.now() ? verifier : null
  } catch {
    return null
  }
}

/** A button, not a link: no flow may start without its challenge (a middle-click on a link would). */
function providerButton (provider, error) {
  const button = h('button', { type: 'button', class: 'button button-secondary button-wide' }, `Sign in with ${provider.name}`)
  button.addEventListener('click', async () => {
    const challenge = await newChallenge()
    if (challenge === null) showError(error, SECURE_PAGE_NEEDED)
    else location.assign(`${startUrl(provider)}?challenge=${challenge}`)
  })
  return button
}

/** "Sign in with …" buttons, one per provider the API offers; nothing at all when there is none. */
export function providerButtons () {
  const box = h('div', { class: 'stack oidc-providers', hidden: true })
  const error = errorBox()
  oidcApi.providers().then(({ items }) => {
    if (items.length === 0) return
    replaceChildren(box,
      h('p', { class: 'muted oidc-or' }, 'or'),
      items.map((provider) => providerButton(provider, error)),
      error)
    box.hidden = false
  }, () => { /* no buttons: the password form still works */ })
  return box
}

/** The page the callback lands on: exchanges the code, then shows the app or the second step. */
export function oidcLandingScreen ({ navigate, notify, signedIn, session }) {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '')
  const code = params.get('code')
  const failure = params.get('error')
  const verifier = takeVerifier()
  // The code is single use; it should not stay in the address bar or the history either way.
  history.replaceState(null, '', `${location.pathname}${location.search}#/oidc`)
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Signing you in…'))
  const card = h('section', { class: 'auth' },
    h('div', { class: 'card auth-card' }, h('h1', { tabindex: '-1' }, 'Signing in'), body))

  const giveUp = (message) => {
    notify(message, 'error')
    navigate(session.user ? '#/account' : '#/sign-in')
  }

  async function finish (user) {
    signedIn(user)
    navigate('#/tasks')
  }

  queueMicrotask(async () => {
    if (!code) {
      giveUp(CALLBACK_ERRORS[failure] ?? 'Signing in with the identity provider failed. Please try again.')
      return
    }
    if (!verifier) {
      giveUp('This sign-in was not started in this browser, so it was not used. To sign in, start again here.')
      return
    }
    try {
      const answer = await oidcApi.exchange(code, verifier)
      if (answer.mfaRequired) {
        const step = secondFactorStep({
          finish: (user) => finish(user),
          restart: (message) => giveUp(message ?? 'Please sign in again.'),
        })
        replaceChildren(body, h('p', { class: 'muted' }, 'Enter the code from your authenticator app.'), step)
        step.querySelector('input[name="code"]').focus()
        return
      }
      if (answer.linked) {
        signedIn(answer.user)
        notify('The identity is linked: you can now sign in with it.')
        navigate('#/account')
        return
      }
      await finish(answer.user)
    } catch (error) {
      giveUp(error.code === 'OIDC_FAILED' ? error.message : friendlyMessage(error))
    }
  })
  return card
}

/** The account page's card: linked identities, linking another, unlinking, a first password. */
export function identitiesCard ({ notify }) {
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'))
  const card = h('div', { class: 'card', id: 'identities' }, h('h2', {}, 'Sign-in with identity providers'), body)

  async function load () {
    try {
      const [{ items, hasPassword }, { items: providers }] = await Promise.all([oidcApi.identities(), oidcApi.providers()])
      // A deployment without providers shows nothing of this (unless identities are left from before).
      card.hidden = items.length === 0 && providers.length === 0 && hasPassword
      replaceChildren(body,
        items.length === 0
          ? h('p', { class: 'muted' }, 'No identity linked.')
          : h('ul', { class: 'session-list', 'aria-label': 'Linked identities' }, items.map((identity) => identityRow(identity, providers))),
        providers.map((provider) => h('button', {
          type: 'button', class: 'button button-secondary', onclick: (event) => link(provider, event.currentTarget),
        }, `Link ${provider.name}`)),
        hasPassword ? null : setPasswordForm())
    } catch (error) {
      replaceChildren(body, h('p', { class: 'form-error' }, friendlyMessage(error)))
    }
  }

  function identityRow (identity, providers) {
    // The provider's display name while it is still configured; its id otherwise.
    const providerName = providers.find((provider) => provider.id === identity.provider)?.name ?? identity.provider
    const remove = h('button', { type: 'button', class: 'button button-quiet' }, 'Unlink')
    remove.addEventListener('click', async () => {
      remove.disabled = true
      try {
        await oidcApi.unlink(identity.id)
        notify('Identity unlinked.')
        load()
      } catch (error) {
        remove.disabled = false
        notify(error.code === 'LAST_SIGN_IN_METHOD' ? 'That is your only way to sign in: set a password first.' : friendlyMessage(error), 'error')
      }
    })
    return h('li', { class: 'session' },
      h('span', {}, h('strong', {}, providerName), identity.email ? ` · ${identity.email}` : '', ` · linked ${formatDate(identity.createdAt)}`),
      remove)
  }

  async function link (provider, button) {
    button.disabled = true
    try {
      // Asked with fetch (the session cookie rides along), then a top-level visit to the provider.
      const challenge = await newChallenge()
      if (challenge === null) {
        button.disabled = false
        notify(SECURE_PAGE_NEEDED, 'error')
        return
      }
      const { url } = await oidcApi.link(provider.id, challenge)
      location.assign(url)
    } catch (error) {
      button.disabled = false
      notify(friendlyMessage(error), 'error')
    }
  }

  function setPasswordForm () {
    const password = h('input', { name: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 256 })
    const error = errorBox()
    const form = h('form', { class: 'stack', 'aria-label': 'Set a password' },
      h('p', { class: 'muted' }, 'Your account has no password: you sign in with an identity provider. A password is another way in.'),
      field('New password', password, 'At least 8 characters.'),
      error,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'button button-primary' }, 'Set password')))
    submitForm(form, {
      error,
      work: async () => {
        await oidcApi.setPassword(password.value)
        notify('Password set.')
        load()
      },
    })
    return form
  }

  load()
  return card
}
