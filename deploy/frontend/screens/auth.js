import { api } from '../api.js'
import { busy, errorBox, field, h, showError } from '../dom.js'
import { friendlyMessage } from '../errors.js'

function authCard (title, intro, form, footer) {
  return h('section', { class: 'auth' },
    h('div', { class: 'card auth-card' },
      h('h1', { tabindex: '-1' }, title),
      h('p', { class: 'muted' }, intro),
      form,
      h('p', { class: 'auth-footer' }, footer)))
}

export function signInScreen ({ navigate, notify, signedIn }) {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' })
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })
  const error = errorBox()
  const form = h('form', { class: 'stack' },
    field('Username', username),
    field('Password', password),
    error,
    h('button', { type: 'submit', class: 'button button-primary button-wide' }, 'Sign in'))
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    // One message at a time: the form's own error replaces any older notice above the screen.
    notify(null)
    showError(error, null)
    busy(form, async () => {
      try {
        const { user } = await api.login(username.value, password.value)
        signedIn(user)
        navigate('#/tasks')
        return true
      } catch (failure) {
        showError(error, friendlyMessage(failure))
        return false
      }
    }).then((isSignedIn) => {
      // Only now is the field enabled again: focus and selection on a disabled field are lost.
      if (!isSignedIn) {
        password.focus()
        password.select()
      }
    })
  })
  return authCard('Sign in', 'Welcome back. Sign in to see your tasks.', form,
    ['New here? ', h('a', { href: '#/register' }, 'Create an account')])
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
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    notify(null)
    showError(error, null)
    if (password.value !== confirm.value) {
      showError(error, 'The two passwords don’t match.')
      confirm.focus()
      return
    }
    busy(form, async () => {
      try {
        await api.register(username.value, password.value)
      } catch (failure) {
        showError(error, friendlyMessage(failure))
        return failure.code === 'USERNAME_TAKEN' ? username : password
      }
      try {
        const { user } = await api.login(username.value, password.value)
        signedIn(user)
        notify(`Welcome, ${user.username}! Your account is ready.`)
        navigate('#/tasks')
      } catch (failure) {
        notify(`Your account was created, but signing in failed: ${friendlyMessage(failure)}`, 'error')
        navigate('#/sign-in')
      }
      return null
    }).then((fieldToFix) => fieldToFix?.focus())
  })
  return authCard('Create an account', 'Pick a username and a password to get started.', form,
    ['Already have an account? ', h('a', { href: '#/sign-in' }, 'Sign in')])
}
