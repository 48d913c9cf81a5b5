/* global location */
import { api, onSessionEnded } from './api.js'
import { h, replaceChildren } from './dom.js'
import { friendlyMessage } from './errors.js'
import { signInScreen, registerScreen } from './screens/auth.js'
import { tasksScreen } from './screens/tasks.js'
import { accountScreen } from './screens/account.js'
import { usersScreen } from './screens/users.js'
import { oidcLandingScreen } from './screens/oidc.js'
import { forgotPasswordScreen, resetPasswordScreen, verifyEmailScreen } from './screens/email.js'
import { maySignedIn, rememberSignedIn } from './session-hint.js'

const header = document.getElementById('app-header')
const main = document.getElementById('main')
const notice = document.getElementById('notice')

/** Who is signed in (null: nobody), as the API last said. */
const session = { user: null }

const ROUTES = {
  '#/sign-in': { screen: signInScreen, title: 'Sign in', signedIn: false },
  '#/register': { screen: registerScreen, title: 'Create an account', signedIn: false },
  '#/tasks': { screen: tasksScreen, title: 'Tasks', signedIn: true },
  '#/account': { screen: accountScreen, title: 'Account', signedIn: true },
  '#/users': { screen: usersScreen, title: 'Users', signedIn: true, role: 'admin' },
  // Signed in or not: a sign-in lands here, and so does linking an identity to a signed-in account.
  '#/oidc': { screen: oidcLandingScreen, title: 'Signing in' },
  '#/forgot-password': { screen: forgotPasswordScreen, title: 'Forgot password', signedIn: false },
  // Mailed links: they work signed in or out (no `signedIn`), and carry `?token=…` after the route.
  '#/reset-password': { screen: resetPasswordScreen, title: 'Reset password' },
  '#/verify-email': { screen: verifyEmailScreen, title: 'Confirm e-mail address' },
}

// A notice survives the one navigation that follows it ("You have signed out" on the sign-in
// screen), and is cleared by the next.
let keepNotice = false

/** A short message above the screen; `kind` is 'info' or 'error'. */
function notify (text, kind = 'info') {
  keepNotice = Boolean(text)
  if (!text) {
    notice.hidden = true
    replaceChildren(notice)
    return
  }
  notice.className = `notice notice-${kind}`
  notice.hidden = false
  replaceChildren(notice, h('span', {}, text), h('button', {
    type: 'button', class: 'notice-close', 'aria-label': 'Dismiss', onclick: () => notify(null),
  }, '×'))
}

function navigate (hash) {
  if (location.hash === hash) render()
  else location.hash = hash
}

function signedIn (user) {
  session.user = user
  rememberSignedIn(true)
  renderHeader()
}

function signedOut (message) {
  session.user = null
  rememberSignedIn(false)
  renderHeader()
  notify(message, 'info')
  navigate('#/sign-in')
}

async function signOut () {
  try {
    await api.logout()
  } catch (error) {
    // Already signed out on the server (401) is what we wanted anyway.
    if (error.status !== 401) {
      notify(friendlyMessage(error), 'error')
      return
    }
  }
  signedOut('You have signed out.')
}

function renderHeader () {
  const user = session.user
  const current = location.hash
  const link = (hash, label) => h('a', { href: hash, 'aria-current': current === hash ? 'page' : undefined }, label)
  replaceChildren(header,
    h('a', { class: 'brand', href: user ? '#/tasks' : '#/sign-in' },
      h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '✓'), 'Tasks'),
    user
      ? [
          h('nav', { class: 'nav', 'aria-label': 'Main' },
            link('#/tasks', 'My tasks'),
            link('#/account', 'Account'),
            user.role === 'admin' ? link('#/users', 'Users') : null),
          h('div', { class: 'who' },
            h('span', { class: 'who-name' }, h('span', { class: 'who-label' }, 'Signed in as '), h('strong', {}, user.username)),
            h('button', { type: 'button', class: 'button button-quiet', onclick: signOut }, 'Sign out')),
        ]
      : null)
}

function render () {
  // A route's parameters follow a `?` (#/oidc?code=…).
  const route = ROUTES[location.hash.split('?')[0]]
  if (!route) {
    navigate(session.user ? '#/tasks' : '#/sign-in')
    return
  }
  if (route.signedIn && !session.user) {
    navigate('#/sign-in')
    return
  }
  if (route.signedIn === false && session.user) {
    navigate('#/tasks')
    return
  }
  if (route.role && session.user?.role !== route.role) {
    notify('That page is for admins only.', 'error')
    navigate('#/tasks')
    return
  }
  if (!keepNotice) notify(null)
  keepNotice = false
  document.title = `${route.title} · Tasks`
  renderHeader()
  const context = { session, navigate, notify, signedIn, signedOut }
  replaceChildren(main, route.screen(context))
  // Move focus to the new screen's heading, as a page load would, for keyboard and screen reader users.
  main.querySelector('h1')?.focus({ preventScroll: true })
}

onSessionEnded(() => {
  if (session.user) signedOut('Your session has ended. Please sign in again.')
})

window.addEventListener('hashchange', () => {
  render()
})

async function start () {
  replaceChildren(main, h('p', { class: 'loading' }, 'Loading…'))
  if (maySignedIn()) {
    try {
      const { user } = await api.me()
      signedIn(user)
      // A role that needs a second factor can use nothing else until it has one.
      if (!user.mfa) {
        const status = await api.mfaStatus().catch(() => null)
        if (status?.required) {
          notify('Your role requires two-step sign-in. Set it up below to use the app.', 'error')
          if (location.hash !== '#/account') location.hash = '#/account'
        }
      }
    } catch (error) {
      session.user = null
      // 401: the session ended while the page was closed; that is a normal signed-out start.
      if (error.status === 401) rememberSignedIn(false)
      else notify(friendlyMessage(error), 'error')
    }
  }
  render()
}

start()
