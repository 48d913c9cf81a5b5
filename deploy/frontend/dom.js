/* global Node */
// Every node is built here, and all text goes in through text nodes: user data never passes
// through innerHTML, so a task titled "<img src=x onerror=...>" is shown, not run.

import { friendlyMessage } from './errors.js'

/**
 * h('button', { class: 'primary', type: 'submit', onclick: fn }, 'Save')
 * Props starting with "on" become listeners; `class`, `dataset` and booleans are handled; anything
 * else is an attribute. Children are nodes, strings (as text), or null/false (skipped).
 */
export function h (tag, props = {}, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value)
    } else if (name === 'class') {
      element.className = value
    } else if (name === 'dataset') {
      Object.assign(element.dataset, value)
    } else if (name === 'value') {
      element.value = value
    } else if (name === 'checked') {
      element.checked = value
    } else if (value === true) {
      element.setAttribute(name, '')
    } else {
      element.setAttribute(name, String(value))
    }
  }
  append(element, children)
  return element
}

function append (parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    if (Array.isArray(child)) append(parent, child)
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
}

/** Replaces all children of `parent` with `children`. */
export function replaceChildren (parent, ...children) {
  parent.replaceChildren()
  append(parent, children)
}

/** A labelled form field. */
export function field (label, input, hint) {
  const id = input.id || `field-${Math.random().toString(36).slice(2, 9)}`
  input.id = id
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'hint' }, hint) : null)
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })

export function formatDate (iso) {
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? '' : dateFormat.format(date)
}

/** Disables a form's controls while `work` runs, so a double click sends one request. */
async function busy (form, work) {
  const controls = [...form.querySelectorAll('button, input, textarea, select')]
  const wasDisabled = controls.map((control) => control.disabled)
  controls.forEach((control) => { control.disabled = true })
  form.setAttribute('aria-busy', 'true')
  try {
    return await work()
  } finally {
    controls.forEach((control, i) => { control.disabled = wasDisabled[i] })
    form.removeAttribute('aria-busy')
  }
}

/**
 * A list filled a keyset page at a time, and its "Load more" button: `fetchPage(cursor)` answers
 * `{ items, nextCursor }`, each item is appended as `render(item)`, and `settled()` runs after every
 * page, loaded or failed.
 */
export function pagedList ({ list, fetchPage, render, onError, settled = () => {} }) {
  const loadMore = h('button', { type: 'button', class: 'button button-secondary', hidden: true }, 'Load more')
  let nextCursor = null
  async function load (cursor) {
    loadMore.disabled = true
    try {
      const page = await fetchPage(cursor)
      for (const item of page.items) list.append(render(item))
      nextCursor = page.nextCursor
      loadMore.hidden = nextCursor === null
    } catch (error) {
      onError(error)
    } finally {
      loadMore.disabled = false
      settled()
    }
  }
  loadMore.addEventListener('click', () => load(nextCursor))
  return { loadMore, start: () => load(undefined) }
}

/** A form's error line: hidden until `showError` puts a message in it; read out when it appears. */
export function errorBox () {
  return h('p', { class: 'form-error', role: 'alert', hidden: true })
}

/** Shows `message` in an error box, or hides the box when there is none. */
export function showError (box, message) {
  box.textContent = message ?? ''
  box.hidden = !message
}

/**
 * One run of a form's request: clears `error`, keeps `form` busy while `work()` runs, and shows a
 * failure in `error` as `failed(failure)` words it (friendlyMessage unless given; null shows
 * nothing, for a failure `failed` handled itself). `done(failure)` runs after, with the failure
 * if any: only then are the fields enabled again, and focus or selection on a disabled field is lost.
 */
export async function runForm (form, { error, work, failed = friendlyMessage, done }) {
  showError(error, null)
  let failure
  await busy(form, async () => {
    try {
      await work()
    } catch (caught) {
      failure = caught
      showError(error, failed(caught))
    }
  })
  done?.(failure)
}

/**
 * `runForm` on every submit of `form`, which stays on the page. With `notify`, an older notice
 * above the screen goes first: one message at a time. `check()` may stop the submit by answering
 * false, after it said why (`repeatMatches` does).
 */
export function submitForm (form, { notify, check, ...options }) {
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    notify?.(null)
    if (check?.() !== false) runForm(form, options)
  })
}

/**
 * For `check`: whether a "repeat it" field holds what the `first` one does; if not, `message` goes
 * to `error` and the focus to the repeat field, the one to retype.
 */
export function repeatMatches (first, repeat, error, message) {
  if (first.value === repeat.value) return true
  showError(error, message)
  repeat.focus()
  return false
}

/**
 * "Are you sure?" in place of a row: `question` (nodes or text), a dangerous `confirmLabel` button
 * that runs `onConfirm(button)`, and a safe button that runs `onCancel`. The safe choice has the
 * focus, so Enter by habit never deletes anything.
 */
export function confirmation ({ question, confirmLabel, cancelLabel = 'Cancel', onConfirm, onCancel, danger = true }) {
  const cancel = h('button', { type: 'button', class: 'button button-secondary', onclick: onCancel }, cancelLabel)
  const confirm = h('button', {
    type: 'button',
    class: danger ? 'button button-danger-solid' : 'button button-primary',
    onclick: async () => {
      confirm.disabled = true
      cancel.disabled = true
      try {
        await onConfirm()
      } finally {
        confirm.disabled = false
        cancel.disabled = false
      }
    },
  }, confirmLabel)
  queueMicrotask(() => cancel.focus())
  return h('div', { class: 'task-confirm', role: 'group', 'aria-label': confirmLabel },
    h('p', {}, question),
    h('div', { class: 'row' }, confirm, cancel))
}

/**
 * The confirmation that deletes a list's `row`: `remove()` asks the API. On failure the message goes
 * to `notify` and `restore()` brings the row back; on success the row leaves the list and
 * `removed(neighbour)` gets the row that was after it (or before it), where the focus can go.
 */
export function confirmRemoval ({ row, notify, remove, restore, removed, ...labels }) {
  return confirmation({
    ...labels,
    onCancel: restore,
    onConfirm: async () => {
      notify(null)
      try {
        await remove()
      } catch (error) {
        notify(friendlyMessage(error), 'error')
        restore()
        return
      }
      const neighbour = row.nextElementSibling ?? row.previousElementSibling
      row.remove()
      removed(neighbour)
    },
  })
}
