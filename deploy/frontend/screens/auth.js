import { api } from '../api.js'
import { errorBox, field, h, repeatMatches, showError, submitForm } from '../dom.js'
import { friendlyMessage } from '../errors.js'
import { providerButtons } from './oidc.js'
import { passkeySignIn } from './passkeys.js'

function authCard (title, intro, form, footer) {
  return h('section', { class: 'auth' },
    h('div', { class: 'card auth-card' },
      h('h1', { tabindex: '-1' }, title),
      h('p', { class: 'muted' }, intro),
      form,
      h('p', { class: 'auth-footer' }, footer)))
}

/**
 * The second step of a sign-in for an account with two-step sign-in on: a 6-digit code from the
 * authenticator app, or one of the recovery codes. The pending sign-in lives in an HttpOnly cookie
 * for five minutes; when it is gone, `restart` brings back the password step.
 */
export function secondFactorStep ({ finish, restart }) {
  const code = h('input', {
    name: 'code',
    inputmode: 'numeric',
    autocomplete: 'one-time-code',
    pattern: '[0-9]{6}',
    maxlength: 6,
    required: true,
  })
  const recovery = h('input', { name: 'recovery-code', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', maxlength: 64 })
  const codeField = field('Code from your authenticator app', code, '6 digits; a new one every 30 seconds.')
  const recoveryField = field('Recovery code', recovery, 'One of the codes you saved when you turned on two-step sign-in. Each works once.')
  recoveryField.hidden = true
  let usingRecovery = false
  const toggle = h('button', { type: 'button', class: 'button button-quiet' }, 'Use a recovery code instead')
  toggle.addEventListener('click', () => {
    usingRecovery = !usingRecovery
    codeField.hidden = usingRecovery
    recoveryField.hidden = !usingRecovery
    code.required = !usingRecovery
    recovery.required = usingRecovery
    toggle.textContent = usingRecovery ? 'Use a code from the app instead' : 'Use a recovery code instead'
    ;(usingRecovery ? recovery : code).focus()
  })
  const error = errorBox()
  const form = h('form', { class: 'stack', 'aria-label': 'Two-step sign-in' },
    codeField,
    recoveryField,
    error,
    h('button', { type: 'submit', class: 'button button-primary button-wide' }, 'Verify'),
    toggle)
  submitForm(form, {
    error,
    work: async () => {
      const { user } = await api.verifySecondFactor(usingRecovery ? { recoveryCode: recovery.value.trim() } : { code: code.value.trim() })
      await finish(user, usingRecovery)
    },
    failed: (failure) => {
      if (failure.code === 'MFA_PENDING_INVALID') {
        restart(friendlyMessage(failure))
        return null
      }
      ;(usingRecovery ? recovery : code).select()
      return friendlyMessage(failure)
    },
  })
  return form
}

export function signInScreen ({ navigate, notify, signedIn }) {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' })
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })
  const error = errorBox()
  const form = h('form', { class: 'stack' },
    field('Username', username),
    field('Password', password),
    error,
    h('button', { type: 'submit', class: 'button button-primary button-wide' }, 'Sign in'),
    passkeySignIn({ usernameInput: username, finish: (user) => finish(user, false), showError: (message) => showError(error, message) }))
  const card = authCard('Sign in', 'Welcome back. Sign in to see your tasks.', [form, providerButtons()],
    ['New here? ', h('a', { href: '#/register' }, 'Create an account'), ' · ', h('a', { href: '#/forgot-password' }, 'Forgot password?')])

  async function finish (user, usedRecoveryCode) {
    signedIn(user)
    notify(null)
    let status = null
    try { status = await api.mfaStatus() } catch { /* the warning below is a nicety */ }
    if (status && status.required && !status.totp && status.passkeys === 0) {
      notify('Your role requires two-step sign-in. Set it up below to use the app.', 'error')
      navigate('#/account')
      return
    }
    if (status && status.totp && status.recoveryCodesLeft <= 3) {
      notify(`Only ${status.recoveryCodesLeft} recovery code${status.recoveryCodesLeft === 1 ? '' : 's'} left. Make new ones on the Account page.`, 'error')
    } else if (usedRecoveryCode) {
      notify('Signed in with a recovery code. That code is now used up.')
    }
    navigate('#/tasks')
  }

  function showPasswordStep (message) {
    card.querySelector('.auth-card').replaceChildren(...passwordStepNodes)
    showError(error, message)
    password.value = ''
    password.focus()
  }
  const passwordStepNodes = [...card.querySelector('.auth-card').childNodes]

  function showCodeStep () {
    const step = secondFactorStep({ finish, restart: showPasswordStep })
    card.querySelector('.auth-card').replaceChildren(
      h('h1', { tabindex: '-1' }, 'Two-step sign-in'),
      h('p', { class: 'muted' }, 'Enter the code from your authenticator app.'),
      step,
      h('p', { class: 'auth-footer' }, h('a', { href: '#/sign-in', onclick: (event) => { event.preventDefault(); showPasswordStep(null) } }, 'Start over')))
    step.querySelector('input[name="code"]').focus()
  }

  // The account's second factor is a passkey: a passkey sign-in finishes it (and is complete alone).
  function showPasskeyStep () {
    const stepError = errorBox()
    const passkey = passkeySignIn({ usernameInput: h('input'), finish: (user) => finish(user, false), showError: (message) => showError(stepError, message) })
    card.querySelector('.auth-card').replaceChildren(
      h('h1', { tabindex: '-1' }, 'Confirm with your passkey'),
      h('p', { class: 'muted' }, 'Your account is protected by a passkey: use it to finish signing in.'),
      stepError,
      passkey,
      h('p', { class: 'auth-footer' }, h('a', { href: '#/sign-in', onclick: (event) => { event.preventDefault(); showPasswordStep(null) } }, 'Start over')))
    // Here it is the only way on, not an alternative: no "or" above it.
    passkey.querySelector('.separator')?.remove()
    passkey.querySelector('button').focus()
  }

  submitForm(form, {
    notify,
    error,
    work: async () => {
      const answer = await api.login(username.value, password.value)
      if (answer.mfaRequired) {
        // The password was right: the next step takes the focus, not the password field.
        if (answer.methods.includes('totp')) showCodeStep()
        else showPasskeyStep()
        return
      }
      await finish(answer.user, false)
    },
    done: (failure) => {
      if (failure) {
        password.focus()
        password.select()
      }
    },
  })
  return card
}

export function registerScreen ({ navigate, notify, signedIn }) {
  // The API's own rules, so most mistakes are caught before a round trip.
  const username = h('input', {
    name: 'username',
    autocomplete: 'username',
    required: true,
    minlength: 3,
    maxlength: 32,
    pattern: '[A-Za-z0-9_.\\-]+',
    autocapitalize: 'none',
    spellcheck: 'false',
  })
  const password = h('input', { name: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 256 })
  const confirm = h('input', { name: 'confirm-password', type: 'password', autocomplete: 'new-password', required: true })
  const error = errorBox()
  const form = h('form', { class: 'stack' },
    field('Username', username, '3–32 letters, digits, dots, dashes or underscores.'),
    field('Password', password, 'At least 8 characters. A short phrase is easy to remember and hard to guess.'),
    field('Repeat password', confirm),
    error,
    h('button', { type: 'submit', class: 'button button-primary button-wide' }, 'Create account'))

  // Only a failed registration is the form's error: a failed sign-in after it is not.
  async function createAccount () {
    await api.register(username.value, password.value)
    try {
      const { user } = await api.login(username.value, password.value)
      signedIn(user)
      notify(`Welcome, ${user.username}! Your account is ready.`)
      navigate('#/tasks')
    } catch (failure) {
      notify(`Your account was created, but signing in failed: ${friendlyMessage(failure)}`, 'error')
      navigate('#/sign-in')
    }
  }

  submitForm(form, {
    notify,
    error,
    check: () => repeatMatches(password, confirm, error, 'The two passwords don’t match.'),
    work: createAccount,
    done: (failure) => {
      if (failure) (failure.code === 'USERNAME_TAKEN' ? username : password).focus()
    },
  })
  return authCard('Create an account', 'Pick a username and a password to get started.', form,
    ['Already have an account? ', h('a', { href: '#/sign-in' }, 'Sign in')])
}
