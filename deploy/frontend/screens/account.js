import { api } from '../api.js'
import { errorBox, field, formatDate, h, repeatMatches, replaceChildren, submitForm } from '../dom.js'
import { currentPasswordMessage, friendlyMessage } from '../errors.js'
import { secondFactorCard } from './mfa.js'
import { identitiesCard } from './oidc.js'
import { emailCard } from './email.js'
import { passkeysCard } from './passkeys.js'

/** "Chrome on Linux" from a user-agent string: enough to recognise one's own devices. */
function describeAgent (userAgent) {
  if (!userAgent) return 'Unknown device'
  const browser = [['Edg/', 'Edge'], ['Firefox/', 'Firefox'], ['Chrome/', 'Chrome'], ['Chromium/', 'Chromium'], ['Safari/', 'Safari'], ['curl/', 'curl']]
    .find(([marker]) => userAgent.includes(marker))?.[1] ?? 'Browser'
  const system = [['Android', 'Android'], ['iPhone', 'iPhone'], ['iPad', 'iPad'], ['Windows', 'Windows'], ['Mac OS X', 'macOS'], ['Linux', 'Linux']]
    .find(([marker]) => userAgent.includes(marker))?.[1]
  return system ? `${browser} on ${system}` : browser
}

const METHOD_LABELS = {
  password: 'a password',
  'password+totp': 'a password and a code',
  recovery_code: 'a recovery code',
  passkey: 'a passkey',
  oidc: 'an identity provider',
}

export function accountScreen ({ session, notify, signedIn, signedOut }) {
  const current = h('input', { name: 'current-password', type: 'password', autocomplete: 'current-password', required: true })
  const next = h('input', { name: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 256 })
  const repeat = h('input', { name: 'repeat-password', type: 'password', autocomplete: 'new-password', required: true })
  const passwordError = errorBox()
  const passwordForm = h('form', { class: 'stack' },
    field('Current password', current),
    field('New password', next, 'At least 8 characters.'),
    field('Repeat new password', repeat),
    passwordError,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'button button-primary' }, 'Change password')))
  submitForm(passwordForm, {
    notify,
    error: passwordError,
    check: () => repeatMatches(next, repeat, passwordError, 'The two new passwords don’t match.'),
    work: async () => {
      await api.changePassword(current.value, next.value)
      passwordForm.reset()
      notify('Password changed. Your other devices have been signed out.')
      loadSessions()
    },
    failed: currentPasswordMessage,
    done: (failure) => {
      if (!failure) return
      const fieldToFix = failure.code === 'BAD_CREDENTIALS' ? current : next
      fieldToFix.focus()
      fieldToFix.select()
    },
  })

  const sessionList = h('ul', { class: 'session-list', 'aria-label': 'Active sessions' })

  async function loadSessions () {
    try {
      const { items } = await api.sessions()
      replaceChildren(sessionList, items.map(sessionItem))
    } catch (error) {
      replaceChildren(sessionList, h('li', { class: 'form-error' }, friendlyMessage(error)))
    }
  }

  function sessionItem (item) {
    const end = h('button', { type: 'button', class: 'button button-quiet button-danger' }, item.current ? 'Sign out' : 'End session')
    end.addEventListener('click', async () => {
      end.disabled = true
      try {
        await api.revokeSession(item.id)
        if (item.current) signedOut('You have signed out.')
        else loadSessions()
      } catch (error) {
        end.disabled = false
        notify(friendlyMessage(error), 'error')
      }
    })
    return h('li', { class: 'session' },
      h('div', {},
        h('p', { class: 'session-device' }, describeAgent(item.userAgent),
          item.current ? h('span', { class: 'badge' }, 'This device') : null),
        h('p', { class: 'task-meta' },
          `Signed in ${formatDate(item.createdAt)}${METHOD_LABELS[item.method] ? ` with ${METHOD_LABELS[item.method]}` : ''} · last active ${formatDate(item.lastUsedAt)}`,
          item.ip ? ` · ${item.ip}` : '')),
      end)
  }

  const everywhere = h('button', { type: 'button', class: 'button button-danger-solid' }, 'Sign out everywhere')
  everywhere.addEventListener('click', async () => {
    everywhere.disabled = true
    try {
      await api.logoutAll()
      signedOut('You have been signed out on all your devices.')
    } catch (error) {
      everywhere.disabled = false
      notify(friendlyMessage(error), 'error')
    }
  })

  loadSessions()

  return h('section', { class: 'screen' },
    h('h1', { tabindex: '-1' }, 'Account'),
    h('div', { class: 'card' },
      h('h2', {}, 'Profile'),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Username'), h('dd', {}, session.user.username),
        h('dt', {}, 'Role'), h('dd', {}, session.user.role === 'admin' ? 'Administrator' : 'User'),
        h('dt', {}, 'Member since'), h('dd', {}, formatDate(session.user.createdAt)),
        h('dt', {}, 'Two-step sign-in'), h('dd', { class: 'mfa-summary' }, session.user.mfa ? 'On' : 'Off'))),
    emailCard({ session, notify }),
    secondFactorCard({
      notify,
      refreshUser: async () => {
        try { signedIn((await api.me()).user) } catch { /* the header keeps the old name; nothing else depends on it */ }
      },
    }),
    identitiesCard({ notify }),
    passkeysCard({ notify, signedIn }),
    h('div', { class: 'card' },
      h('h2', {}, 'Change password'),
      h('p', { class: 'muted' }, 'Changing your password signs out every other device.'),
      passwordForm),
    h('div', { class: 'card' },
      h('h2', {}, 'Where you’re signed in'),
      sessionList,
      h('div', { class: 'row row-space' },
        h('p', { class: 'muted' }, 'Lost a device? End every session, this one included.'),
        everywhere)))
}
