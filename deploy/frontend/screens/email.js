/* global location, history */
import { request } from '../api.js'
import { errorBox, field, h, repeatMatches, runForm, submitForm } from '../dom.js'
import { currentPasswordMessage, friendlyMessage } from '../errors.js'

// The e-mail features: an address on the account, "forgot password", and the two pages the mailed
// links open. Those pages never act on load: a mail scanner that fetches a link changes nothing;
// the person presses the button.

const email = {
  change: (address, currentPassword) => request('POST', '/api/auth/email', { email: address, currentPassword }),
  verify: (token) => request('POST', '/api/auth/email/verify', { token }, { refresh: false }),
  forgot: (address) => request('POST', '/api/auth/password/forgot', { email: address }, { refresh: false }),
  reset: (body) => request('POST', '/api/auth/password/reset', body, { refresh: false }),
}

const LINK_PROBLEM = {
  EMAIL_TOKEN_INVALID: 'This confirmation link has expired, was already used, or a newer one was sent. Ask for a new one on the Account page.',
  RESET_TOKEN_INVALID: 'This reset link has expired, was already used, or a newer one was sent. Ask for a new one below.',
}

function card (title, intro, ...children) {
  return h('section', { class: 'auth' },
    h('div', { class: 'card auth-card' },
      h('h1', { tabindex: '-1' }, title),
      h('p', { class: 'muted' }, intro),
      ...children))
}

/**
 * The token in `#/page?token=…` ('' when the link was cut short), dropped from the address once read:
 * it should stay neither in the history nor in an address someone copies. The page keeps it until used.
 */
function takeTokenFromHash () {
  const [route, query] = location.hash.split('?')
  const token = new URLSearchParams(query ?? '').get('token') ?? ''
  history.replaceState(null, '', `${location.pathname}${location.search}${route}`)
  return token
}

export function forgotPasswordScreen ({ notify }) {
  const address = h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true, maxlength: 254 })
  const error = errorBox()
  const form = h('form', { class: 'stack' },
    field('E-mail address', address, 'The verified address of your account.'),
    error,
    h('button', { type: 'submit', class: 'button button-primary button-wide' }, 'Send a reset link'))
  submitForm(form, {
    notify,
    error,
    work: async () => {
      await email.forgot(address.value.trim())
      // The same words whatever the address: the server does not say whether it knows it either.
      notify('If an account has this verified address, a link to reset its password is on its way. It works for 30 minutes.')
      form.reset()
    },
  })
  return card('Forgot your password?', 'Enter your account’s e-mail address and we’ll send a link to choose a new password. Resetting signs you out everywhere.',
    form, h('p', { class: 'auth-footer' }, h('a', { href: '#/sign-in' }, 'Back to sign-in')))
}

export function resetPasswordScreen ({ notify, navigate, session, signedOut }) {
  const token = takeTokenFromHash()
  if (token === '') return card('Reset your password', LINK_PROBLEM.RESET_TOKEN_INVALID, h('p', {}, h('a', { href: '#/forgot-password' }, 'Ask for a new link')))
  const next = h('input', { name: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 256 })
  const repeat = h('input', { name: 'repeat-password', type: 'password', autocomplete: 'new-password', required: true })
  const code = h('input', { name: 'code', autocomplete: 'one-time-code', maxlength: 64, autocapitalize: 'none', spellcheck: 'false' })
  const codeField = field('Code from your authenticator app, or a recovery code', code, 'Your account has two-step sign-in: a reset needs it too.')
  codeField.hidden = true
  const error = errorBox()
  const form = h('form', { class: 'stack' },
    field('New password', next, 'At least 8 characters.'),
    field('Repeat new password', repeat),
    codeField,
    error,
    h('button', { type: 'submit', class: 'button button-primary button-wide' }, 'Set the new password'))
  submitForm(form, {
    notify,
    error,
    check: () => repeatMatches(next, repeat, error, 'The two new passwords don’t match.'),
    work: async () => {
      const body = { token, newPassword: next.value }
      if (!codeField.hidden && code.value.trim() !== '') body.code = code.value.trim()
      await email.reset(body)
      const done = 'Your password was changed and every device signed out. Sign in with the new password.'
      // This browser's session ended with the others.
      if (session.user) {
        signedOut(done)
        return
      }
      notify(done)
      navigate('#/sign-in')
    },
    failed: (failure) => {
      if (failure.code === 'MFA_INVALID') {
        const wasAsked = !codeField.hidden
        codeField.hidden = false
        code.required = true
        code.focus()
        return wasAsked ? friendlyMessage(failure) : 'Your account has two-step sign-in: enter a code from your app (or a recovery code) too.'
      }
      return LINK_PROBLEM[failure.code] ?? friendlyMessage(failure)
    },
  })
  return card('Choose a new password', 'Pressing the button sets the new password and signs your account out on every device.',
    form, h('p', { class: 'auth-footer' }, h('a', { href: '#/forgot-password' }, 'Ask for a new link')))
}

export function verifyEmailScreen ({ notify, navigate, session, signedIn }) {
  const token = takeTokenFromHash()
  if (token === '') return card('Confirm your e-mail address', LINK_PROBLEM.EMAIL_TOKEN_INVALID)
  const error = errorBox()
  const confirm = h('button', { type: 'button', class: 'button button-primary button-wide' }, 'Confirm this address')
  const form = h('form', { class: 'stack' }, error, confirm)
  confirm.addEventListener('click', () => runForm(form, {
    error,
    work: async () => {
      const { user } = await email.verify(token)
      // The link may be another account's (a mail opened in a browser signed in as someone else):
      // this browser's session stays whose it is; only its own account's header is refreshed.
      if (session.user?.id === user.id) {
        signedIn(user)
        notify(`Your address ${user.email} is confirmed.`)
        navigate('#/account')
      } else if (session.user) {
        notify(`The address ${user.email} is confirmed for the account ${user.username}. You are still signed in as ${session.user.username}.`)
        navigate('#/tasks')
      } else {
        // Confirming signs nobody in: the link proves a mailbox, not a password.
        notify(`Your address ${user.email} is confirmed. Sign in to use your account.`)
        navigate('#/sign-in')
      }
    },
    failed: (failure) => LINK_PROBLEM[failure.code] ?? friendlyMessage(failure),
  }))
  return card('Confirm your e-mail address', 'Press the button to make the address this link was sent to your account’s address.', form)
}

/** The account page's card: the address, and a form to add or change it. */
export function emailCard ({ session, notify }) {
  const address = h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true, maxlength: 254 })
  const current = h('input', { name: 'email-current-password', type: 'password', autocomplete: 'current-password', required: true })
  const error = errorBox()
  const form = h('form', { class: 'stack', 'aria-label': 'E-mail address' },
    field(session.user.email ? 'New e-mail address' : 'E-mail address', address),
    field('Current password', current),
    error,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'button button-primary' }, session.user.email ? 'Change address' : 'Add address')))
  submitForm(form, {
    notify,
    error,
    work: async () => {
      await email.change(address.value.trim(), current.value)
      notify(`We sent a confirmation link to ${address.value.trim()}. The address is used once you open it.`)
      form.reset()
    },
    failed: currentPasswordMessage,
  })
  return h('div', { class: 'card' },
    h('h2', {}, 'E-mail address'),
    h('p', { class: 'muted email-summary' }, session.user.email
      ? `Your verified address is ${session.user.email}. Password resets and security notices go there.`
      : 'No address yet. With one, you can reset a forgotten password and hear about changes to your account.'),
    form)
}
