import { api } from '../api.js'
import { errorBox, field, h, replaceChildren, submitForm } from '../dom.js'
import { currentPasswordMessage, friendlyMessage } from '../errors.js'

const SVG = 'http://www.w3.org/2000/svg'
const LOW_RECOVERY_CODES = 3

/**
 * The otpauth:// URL as a QR code a phone can scan, drawn as SVG from the encoder in vendor/
 * (copied out of node_modules by the build, never committed). Without it the secret below still
 * works: the set-up can be typed in by hand.
 */
async function qrCode (text) {
  let qrcode
  try {
    ({ default: qrcode } = await import('../vendor/qrcode.mjs'))
  } catch {
    return h('p', { class: 'hint' }, 'The QR code could not be drawn here; type the key below into your app instead.')
  }
  const qr = qrcode(0, 'M')
  qr.addData(text)
  qr.make()
  const size = qr.getModuleCount()
  const margin = 4
  const svg = document.createElementNS(SVG, 'svg')
  svg.setAttribute('viewBox', `0 0 ${size + 2 * margin} ${size + 2 * margin}`)
  svg.setAttribute('width', String((size + 2 * margin) * 5))
  svg.setAttribute('height', String((size + 2 * margin) * 5))
  svg.setAttribute('role', 'img')
  svg.setAttribute('aria-label', 'QR code for your authenticator app')
  svg.setAttribute('class', 'qr-code')
  const background = document.createElementNS(SVG, 'rect')
  background.setAttribute('width', '100%')
  background.setAttribute('height', '100%')
  background.setAttribute('fill', '#fff')
  svg.append(background)
  let path = ''
  for (let row = 0; row < size; row++) {
    for (let col = 0; col < size; col++) {
      if (qr.isDark(row, col)) path += `M${col + margin} ${row + margin}h1v1h-1z`
    }
  }
  const dark = document.createElementNS(SVG, 'path')
  dark.setAttribute('d', path)
  dark.setAttribute('fill', '#000')
  svg.append(dark)
  return svg
}

/** The ten recovery codes, shown once, with copy and download. */
function recoveryCodesPanel (codes, done) {
  const text = codes.join('\n') + '\n'
  const copy = h('button', { type: 'button', class: 'button button-secondary' }, 'Copy')
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text)
      copy.textContent = 'Copied'
    } catch {
      copy.textContent = 'Select and copy them by hand'
    }
  })
  const download = h('button', { type: 'button', class: 'button button-secondary' }, 'Download')
  download.addEventListener('click', () => {
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }))
    const link = h('a', { href: url, download: 'recovery-codes.txt' })
    document.body.append(link)
    link.click()
    link.remove()
    URL.revokeObjectURL(url)
  })
  return h('div', { class: 'stack recovery-codes' },
    h('p', {}, h('strong', {}, 'Save these recovery codes now.'),
      ' Each one signs you in once if you lose your phone. They will not be shown again.'),
    h('ol', { class: 'code-list', 'aria-label': 'Recovery codes' }, codes.map((code) => h('li', {}, h('code', {}, code)))),
    h('div', { class: 'row' }, copy, download,
      h('button', { type: 'button', class: 'button button-primary', onclick: done }, 'I have saved them')))
}

function passwordInput () {
  return h('input', { name: 'current-password', type: 'password', autocomplete: 'current-password', required: true })
}

function codeInput () {
  return h('input', { name: 'code', autocomplete: 'one-time-code', autocapitalize: 'none', spellcheck: 'false', maxlength: 64, required: true })
}

/**
 * The account page's two-step sign-in card: its state, enrolment (QR code, the key as text, a
 * confirming code, recovery codes), new recovery codes, and turning it off.
 */
export function secondFactorCard ({ notify, refreshUser }) {
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'))
  const card = h('div', { class: 'card', id: 'two-step' }, h('h2', {}, 'Two-step sign-in'), body)

  async function load () {
    try {
      const status = await api.mfaStatus()
      replaceChildren(body, status.totp ? enabledView(status) : disabledView(status))
    } catch (error) {
      replaceChildren(body, h('p', { class: 'form-error' }, friendlyMessage(error)))
    }
  }

  function showCodes (codes) {
    replaceChildren(body, recoveryCodesPanel(codes, () => { load(); refreshUser() }))
  }

  function disabledView (status) {
    const password = passwordInput()
    const error = errorBox()
    const form = h('form', { class: 'stack' },
      field('Current password', password),
      error,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'button button-primary' }, 'Set up two-step sign-in')))
    submitForm(form, {
      error,
      work: async () => {
        const { secret, otpauthUrl } = await api.startTotp(password.value)
        replaceChildren(body, await enrolView(secret, otpauthUrl))
      },
      failed: currentPasswordMessage,
    })
    return [
      h('p', { class: 'mfa-state' }, 'Status: ', h('strong', {}, 'Off')),
      // A passkey satisfies the requirement too (see the Passkeys card).
      status.required && status.passkeys === 0 ? h('p', { class: 'form-error' }, 'Your role requires two-step sign-in: set it up to use the app.') : null,
      h('p', { class: 'muted' }, 'After your password, you will also enter a code from an authenticator app on your phone. A stolen password alone is then not enough.'),
      form,
    ]
  }

  async function enrolView (secret, otpauthUrl) {
    const code = h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: 6, required: true })
    const error = errorBox()
    const form = h('form', { class: 'stack' },
      field('Code shown by the app', code, '6 digits'),
      error,
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'button button-primary' }, 'Turn on'),
        h('button', { type: 'button', class: 'button button-quiet', onclick: load }, 'Cancel')))
    submitForm(form, {
      error,
      work: async () => {
        const { recoveryCodes } = await api.confirmTotp(code.value.trim())
        notify('Two-step sign-in is on.')
        showCodes(recoveryCodes)
      },
      failed: (failure) => {
        code.select()
        return friendlyMessage(failure)
      },
    })
    return [
      h('p', {}, '1. Scan this QR code with your authenticator app:'),
      await qrCode(otpauthUrl),
      h('p', {}, 'Or enter this key by hand:'),
      h('p', {}, h('code', { class: 'totp-secret', 'data-testid': 'totp-secret' }, secret)),
      h('p', {}, '2. Enter the code the app shows to finish.'),
      form,
    ]
  }

  function enabledView (status) {
    const low = status.recoveryCodesLeft <= LOW_RECOVERY_CODES
    return [
      h('p', { class: 'mfa-state' }, 'Status: ', h('strong', {}, 'On'), ' · authenticator app'),
      h('p', { class: low ? 'form-error recovery-left' : 'muted recovery-left' },
        `${status.recoveryCodesLeft} recovery code${status.recoveryCodesLeft === 1 ? '' : 's'} left.`,
        low ? ' Make new ones now, before you run out.' : ''),
      guardedForm('New recovery codes', 'The old codes stop working.', 'button-secondary', async (password, code) => {
        const { recoveryCodes } = await api.newRecoveryCodes(password, code)
        notify('New recovery codes made; the old ones no longer work.')
        showCodes(recoveryCodes)
      }),
      guardedForm('Turn off two-step sign-in', 'Your password alone will sign you in again.', 'button-danger-solid', async (password, code) => {
        await api.disableTotp(password, code)
        notify('Two-step sign-in is off.')
        await load()
        refreshUser()
      }),
    ]
  }

  /** A form behind the password and a code (from the app, or a recovery code). */
  function guardedForm (title, hint, buttonClass, action) {
    const password = passwordInput()
    const code = codeInput()
    const error = errorBox()
    const form = h('form', { class: 'stack' },
      field('Current password', password),
      field('Code from the app, or a recovery code', code),
      error,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: `button ${buttonClass}` }, title)))
    submitForm(form, {
      error,
      work: () => action(password.value, code.value.trim()),
      failed: currentPasswordMessage,
    })
    return h('details', { class: 'mfa-action' }, h('summary', {}, title), h('p', { class: 'muted' }, hint), form)
  }

  load()
  return card
}
