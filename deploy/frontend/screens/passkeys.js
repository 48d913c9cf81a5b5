/* global location */
import { api } from '../api.js'
import { confirmation, errorBox, field, formatDate, h, replaceChildren, showError, submitForm } from '../dom.js'
import { friendlyMessage } from '../errors.js'

// @simplewebauthn/browser's ES modules, copied out of node_modules by the build (never committed).
// Loaded on demand: without them the rest of the page still works, passwords included.
let library
async function webauthn () {
  library ??= import('../vendor/simplewebauthn/index.js').catch((error) => {
    library = undefined
    throw error
  })
  return library
}

const NO_SUPPORT = 'This browser can’t use passkeys. Sign in with your password instead.'

/**
 * A sentence for a failed ceremony. Browsers report "no passkey for this site on this device" and
 * "the person cancelled" alike (NotAllowedError), on purpose, so one message covers both.
 */
function passkeyMessage (error, ceremony) {
  switch (error?.name) {
    case 'NotAllowedError':
      return ceremony === 'sign-in'
        ? 'No passkey was used. You may have cancelled, or this device has no passkey for this site: try again, or sign in with your password.'
        : 'No passkey was added: the request was cancelled or timed out.'
    case 'InvalidStateError':
      return 'This device already holds a passkey for your account.'
    case 'SecurityError':
      return 'Passkeys aren’t set up for this page’s address. (Running it yourself? Check WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS.)'
    case 'AbortError':
      return null
  }
  if (error?.code === 'PASSKEY_INVALID') {
    return ceremony === 'sign-in'
      ? 'That passkey wasn’t accepted. Try again, or sign in with your password.'
      : 'That passkey couldn’t be added. Please try again.'
  }
  if (error?.code === 'PASSKEY_NOT_FOUND') return 'That passkey was already removed.'
  if (error instanceof Error && !('status' in error)) return 'The passkey request failed. Please try again.'
  return friendlyMessage(error)
}

/** Whether this page may use the RP id the API named: its host is the RP id or under it. */
const pageFits = (rpId) => location.hostname === rpId || location.hostname.endsWith(`.${rpId}`)

/**
 * "Sign in with a passkey" for the sign-in screen, and, where the browser offers it, passkeys in the
 * username field's autofill (conditional mediation). The autofill request starts when the username
 * field is first focused (so a page that is only looked at asks the API nothing) and waits in the
 * background; the button aborts it before its own (modal) request, so neither blocks the other.
 * `finish(user)` runs once signed in; `showError(message)` shows a failure in the form.
 */
export function passkeySignIn ({ usernameInput, finish, showError: show }) {
  const button = h('button', { type: 'button', class: 'button button-secondary button-wide' }, 'Sign in with a passkey')
  let signingIn = false

  async function complete (response) {
    const { user } = await api.passkeyLogin(response)
    signingIn = true
    await finish(user)
  }

  button.addEventListener('click', async () => {
    show(null)
    button.disabled = true
    try {
      const lib = await webauthn().catch(() => null)
      if (lib === null || !lib.browserSupportsWebAuthn()) {
        show(NO_SUPPORT)
        return
      }
      // The autofill request, if any, ends here: a page has one WebAuthn request at a time.
      lib.WebAuthnAbortService.cancelCeremony()
      const { options } = await api.passkeyLoginOptions()
      if (!pageFits(options.rpId)) {
        show(passkeyMessage({ name: 'SecurityError' }, 'sign-in'))
        return
      }
      await complete(await lib.startAuthentication({ optionsJSON: options }))
    } catch (error) {
      show(passkeyMessage(error, 'sign-in'))
    } finally {
      button.disabled = false
    }
  })

  // Autofill: the username field lists this site's passkeys; choosing one signs in. Quiet when it
  // cannot work (no support, another address): the button and the password remain.
  async function offerAutofill () {
    const lib = await webauthn().catch(() => null)
    if (lib === null || !await lib.browserSupportsWebAuthnAutofill()) return
    let options
    try {
      ({ options } = await api.passkeyLoginOptions())
    } catch {
      return
    }
    if (!pageFits(options.rpId) || signingIn) return
    try {
      await complete(await lib.startAuthentication({ optionsJSON: options, useBrowserAutofill: true }))
    } catch (error) {
      // Only a passkey the person chose and the API refused is worth a word; an abort (the button,
      // leaving the page) or a dismissed prompt is not.
      if (error?.status !== undefined) show(passkeyMessage(error, 'sign-in'))
    }
  }
  if (window.PublicKeyCredential !== undefined) {
    usernameInput.setAttribute('autocomplete', 'username webauthn')
    usernameInput.addEventListener('focus', () => { offerAutofill() }, { once: true })
  }

  // Leaving the sign-in screen ends a waiting autofill request.
  const sinceHash = location.hash
  window.addEventListener('hashchange', function leave () {
    if (location.hash === sinceHash) return
    window.removeEventListener('hashchange', leave)
    if (!signingIn && library !== undefined) library.then((lib) => lib.WebAuthnAbortService.cancelCeremony(), () => {})
  })

  return h('div', { class: 'stack passkey-sign-in' },
    h('p', { class: 'muted separator' }, 'or'),
    button)
}

/** A default name for a new passkey: what a person would call this device. */
function deviceName () {
  const agent = navigator.userAgent
  const system = [['Android', 'Android phone'], ['iPhone', 'iPhone'], ['iPad', 'iPad'], ['Windows', 'Windows PC'], ['Mac OS X', 'Mac'], ['CrOS', 'Chromebook'], ['Linux', 'Linux computer']]
    .find(([marker]) => agent.includes(marker))?.[1]
  return system ?? 'This device'
}

/**
 * The account page's passkeys card: the list (names, when added and last used, remove), and
 * "Add a passkey" with a name. `signedIn(user)` refreshes the header once a passkey changes
 * whether the user has a second factor.
 */
export function passkeysCard ({ notify, signedIn }) {
  const list = h('ul', { class: 'session-list passkey-list', 'aria-label': 'Passkeys' })
  const name = h('input', { name: 'passkey-name', maxlength: 64, autocomplete: 'off', value: deviceName() })
  const error = errorBox()
  const form = h('form', { class: 'stack' },
    field('Name for the new passkey', name, 'So you can tell your passkeys apart, e.g. “Work laptop”.'),
    error,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'button button-primary' }, 'Add a passkey')))

  async function refreshUser () {
    try { signedIn((await api.me()).user) } catch { /* the header keeps its old state */ }
  }

  async function load () {
    try {
      const { items } = await api.passkeys()
      replaceChildren(list, items.length === 0
        ? h('li', { class: 'muted' }, 'No passkeys yet.')
        : items.map(item))
    } catch (failure) {
      replaceChildren(list, h('li', { class: 'form-error' }, friendlyMessage(failure)))
    }
  }

  function item (passkey) {
    const row = h('li', { class: 'session passkey' },
      h('div', {},
        h('p', { class: 'session-device' }, passkey.name),
        h('p', { class: 'task-meta' }, `Added ${formatDate(passkey.createdAt)} · ${passkey.lastUsedAt ? `last used ${formatDate(passkey.lastUsedAt)}` : 'not used yet'}`)),
      h('button', {
        type: 'button',
        class: 'button button-quiet button-danger',
        'aria-label': `Remove ${passkey.name}`,
        onclick: () => row.replaceWith(confirmation({
          question: ['Remove the passkey ', h('strong', {}, passkey.name), '? It will no longer sign you in.'],
          confirmLabel: 'Remove passkey',
          onCancel: load,
          onConfirm: async () => {
            try {
              await api.removePasskey(passkey.id)
              notify(`Passkey “${passkey.name}” removed.`)
            } catch (failure) {
              notify(passkeyMessage(failure, 'remove'), 'error')
            }
            await load()
            refreshUser()
          },
        })),
      }, 'Remove'))
    return row
  }

  submitForm(form, {
    error,
    work: async () => {
      const lib = await webauthn().catch(() => null)
      if (lib === null || !lib.browserSupportsWebAuthn()) {
        showError(error, 'This browser can’t create passkeys.')
        return
      }
      const { options } = await api.passkeyRegisterOptions()
      const response = await lib.startRegistration({ optionsJSON: options })
      const label = name.value.trim()
      const { passkey } = await api.passkeyRegister(response, label === '' ? undefined : label)
      notify(`Passkey “${passkey.name}” added. You can now sign in with it.`)
      name.value = deviceName()
      await load()
      refreshUser()
    },
    failed: (failure) => passkeyMessage(failure, 'add'),
  })

  load()
  return h('div', { class: 'card', id: 'passkeys' },
    h('h2', {}, 'Passkeys'),
    h('p', { class: 'muted' }, 'Sign in with your fingerprint, face or device PIN instead of a password. A passkey also counts as two-step sign-in.'),
    list,
    form)
}
