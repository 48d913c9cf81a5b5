import escapeHtml from 'escape-html'

/** What the user sees the product called, in every subject line and greeting. */
export const PRODUCT_NAME = 'Tasks'

/** Where a request came from, as the mail tells the user ("was it you?"). */
export interface RequestOrigin {
  readonly at: Date
  readonly ip: string
  readonly userAgent: string | undefined
}

/** A change an administrator made at the server's shell (`npm run users`): no address or browser to name. */
export interface AdministratorOrigin {
  readonly at: Date
  readonly byAdministrator: true
}

export type ChangeOrigin = RequestOrigin | AdministratorOrigin

const isByAdministrator = (origin: ChangeOrigin): origin is AdministratorOrigin => 'byAdministrator' in origin

/** Mails that carry a link with a one-time token (only these two ever do). */
export type LinkMailKind = 'verify_email' | 'password_reset'

/** Security notifications: they never carry a token. */
export type NotificationKind =
  | 'password_changed'
  | 'password_reset_done'
  | 'email_changed'
  | 'email_in_use'
  | 'mfa_enabled'
  | 'mfa_disabled'
  | 'recovery_codes_regenerated'
  | 'recovery_code_used'
  | 'passkey_added'
  | 'passkey_removed'

export type MailKind = LinkMailKind | NotificationKind

export interface RenderedMail { readonly subject: string, readonly text: string, readonly html: string }

interface Content {
  readonly subject: string
  /** Paragraphs of plain text; the HTML part shows the same paragraphs. */
  readonly paragraphs: readonly string[]
  readonly action?: { readonly label: string, readonly url: string }
  /** What to do if it was not them. */
  readonly ifNotYou: string
}

export interface MailContext {
  readonly username: string
  readonly origin: ChangeOrigin
  /** The frontend's base URL (APP_URL). */
  readonly appUrl: string
}

const browserOf = (origin: RequestOrigin) => origin.userAgent === undefined || origin.userAgent === ''
  ? 'an unknown browser'
  : origin.userAgent.slice(0, 200)

function when (origin: ChangeOrigin): string {
  const at = `${origin.at.toISOString().replace('T', ' ').slice(0, 19)} UTC`
  return isByAdministrator(origin) ? `${at}, by an administrator` : `${at}, from the address ${origin.ip} (${browserOf(origin)})`
}

const SIGN_IN_AND_SECURE = 'sign in, change your password, and sign out everywhere from the account page; if you cannot sign in any more, use "Forgot password?" on the sign-in page.'

function render ({ subject, paragraphs, action, ifNotYou }: Content, context: MailContext): RenderedMail {
  const greeting = `Hello ${context.username},`
  const footer = `This message was sent by ${PRODUCT_NAME} (${context.appUrl}) about your account. You cannot reply to it.`
  // An administrator's change was not the user's either way: what matters is whether they asked for it.
  const ifNotYouLead = isByAdministrator(context.origin) ? 'If you did not ask for this' : 'If this was not you'
  const text = [
    greeting,
    ...paragraphs,
    ...(action === undefined ? [] : [`${action.label}:\n${action.url}`]),
    `${ifNotYouLead}: ${ifNotYou}`,
    '-- ',
    footer,
  ].join('\n\n') + '\n'
  const p = (value: string) => `<p>${escapeHtml(value)}</p>`
  const html = [
    '<!doctype html><html><body style="font-family: sans-serif; line-height: 1.5; max-width: 36em">',
    p(greeting),
    ...paragraphs.map(p),
    ...(action === undefined ? [] : [`<p><a href="${escapeHtml(action.url)}">${escapeHtml(action.label)}</a></p>`, `<p style="font-size: 0.9em; color: #555">${escapeHtml(action.url)}</p>`]),
    `<p><strong>${ifNotYouLead}:</strong> ${escapeHtml(ifNotYou)}</p>`,
    `<hr><p style="font-size: 0.85em; color: #555">${escapeHtml(footer)}</p>`,
    '</body></html>',
  ].join('\n')
  return { subject: `${PRODUCT_NAME}: ${subject}`, text, html }
}

/** The mails that carry a one-time link, by kind: what was asked, what the link does, and for how long. */
const LINK_MAILS: Record<LinkMailKind, { subject: string, asked: string, howTo: string, label: string, ifNotYou: string }> = {
  verify_email: {
    subject: 'confirm your e-mail address',
    asked: 'use this address for',
    howTo: 'Open the link below and press "Confirm" to make it the account\'s address. The link works once, for 24 hours.',
    label: 'Confirm this address',
    ifNotYou: 'ignore this message; the address is not added to any account unless the link is used.',
  },
  password_reset: {
    subject: 'reset your password',
    asked: 'reset the password of',
    howTo: 'Open the link below to choose a new password. The link works once, for 30 minutes; a newer request voids it. Resetting signs the account out everywhere.',
    label: 'Choose a new password',
    ifNotYou: 'ignore this message; your password stays as it is. Someone may have typed your address by mistake.',
  },
}

export function linkMail (kind: LinkMailKind, context: MailContext, link: string): RenderedMail {
  const mail = LINK_MAILS[kind]
  return render({
    subject: mail.subject,
    paragraphs: [`Someone asked to ${mail.asked} the ${PRODUCT_NAME} account "${context.username}" on ${when(context.origin)}.`, mail.howTo],
    action: { label: mail.label, url: link },
    ifNotYou: mail.ifNotYou,
  }, context)
}

/** The texts of the notifications, by kind: what happened, in one sentence. */
const NOTIFICATIONS: Record<NotificationKind, { subject: string, happened: string }> = {
  password_changed: { subject: 'your password was changed', happened: 'The password of your account was changed' },
  password_reset_done: { subject: 'your password was reset', happened: 'The password of your account was reset with a link sent to this address, and every session was signed out' },
  email_changed: { subject: 'your e-mail address was changed', happened: 'The e-mail address of your account was changed: this address no longer receives its messages' },
  email_in_use: { subject: 'this address is already registered', happened: 'Someone asked to use this address for an account, but it already belongs to yours; nothing was changed' },
  mfa_enabled: { subject: 'two-step sign-in was turned on', happened: 'Two-step sign-in (an authenticator app) was turned on for your account' },
  mfa_disabled: { subject: 'two-step sign-in was turned off', happened: 'Two-step sign-in was turned off for your account: a password alone now signs in' },
  recovery_codes_regenerated: { subject: 'new recovery codes', happened: 'New recovery codes were made for your account; the old ones no longer work' },
  recovery_code_used: { subject: 'a recovery code was used', happened: 'One of your recovery codes was used; it no longer works' },
  passkey_added: { subject: 'a passkey was added', happened: 'A passkey was added to your account: it can now sign in without a password' },
  passkey_removed: { subject: 'a passkey was removed', happened: 'A passkey was removed from your account: it can no longer sign in' },
}

export function notificationMail (kind: NotificationKind, context: MailContext): RenderedMail {
  const { subject, happened } = NOTIFICATIONS[kind]
  const byAdministrator = isByAdministrator(context.origin)
  return render({
    subject,
    paragraphs: [`${happened}, on ${when(context.origin)}.`, byAdministrator ? 'If you asked for it, there is nothing to do.' : 'If it was you, there is nothing to do.'],
    ifNotYou: kind === 'email_in_use'
      ? 'ignore this message; nobody can take over your address.'
      : byAdministrator
        ? 'tell your administrator at once.'
        : `someone else may have your password or your device: ${SIGN_IN_AND_SECURE}`,
  }, context)
}
