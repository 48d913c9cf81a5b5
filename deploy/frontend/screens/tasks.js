import { api } from '../api.js'
import { confirmRemoval, errorBox, field, formatDate, h, pagedList, replaceChildren, submitForm } from '../dom.js'
import { friendlyMessage } from '../errors.js'

const PAGE_SIZE = 10

export function tasksScreen ({ notify }) {
  const list = h('ul', { class: 'task-list', 'aria-label': 'Tasks' })
  const empty = h('p', { class: 'empty', hidden: true }, 'No tasks yet. Add your first one above.')
  const status = h('p', { class: 'loading' }, 'Loading your tasks…')

  function updateEmpty () {
    empty.hidden = list.children.length > 0 || !status.hidden
  }

  const pages = pagedList({
    list,
    fetchPage: (cursor) => api.listTasks(cursor, PAGE_SIZE),
    render: (task) => taskItem(task),
    onError: (error) => notify(friendlyMessage(error), 'error'),
    settled: () => { status.hidden = true; updateEmpty() },
  })

  /**
   * One task, shown read-only; it swaps itself for an edit form or a delete confirmation. After each
   * swap the focus goes to the control the user was on (the checkbox after a toggle, Edit after a save
   * or a cancel, Delete after "Keep it"), so a keyboard user never falls back to the top of the page.
   */
  function taskItem (task) {
    const item = h('li', { class: 'task', dataset: { id: task.id } })
    const show = (focusOn) => {
      replaceChildren(item, taskView())
      if (focusOn) item.querySelector(`[data-focus="${focusOn}"]`)?.focus()
    }
    const replaceWith = (updated, focusOn) => { task = updated; show(focusOn) }

    function taskView () {
      item.classList.toggle('task-done', task.done)
      const checkbox = h('input', {
        type: 'checkbox', class: 'task-check', checked: task.done, 'aria-label': `Done: ${task.title}`, dataset: { focus: 'check' },
      })
      checkbox.addEventListener('change', async () => {
        notify(null)
        checkbox.disabled = true
        try {
          replaceWith((await api.updateTask(task.id, { done: checkbox.checked })).task, 'check')
        } catch (error) {
          checkbox.checked = task.done
          checkbox.disabled = false
          checkbox.focus()
          notify(friendlyMessage(error), 'error')
        }
      })
      return [
        checkbox,
        h('div', { class: 'task-body' },
          h('p', { class: 'task-title' }, task.title),
          task.description ? h('p', { class: 'task-description' }, task.description) : null,
          h('p', { class: 'task-meta' }, task.done ? `Done · updated ${formatDate(task.updatedAt)}` : `Added ${formatDate(task.createdAt)}`)),
        h('div', { class: 'task-actions' },
          h('button', { type: 'button', class: 'button button-quiet', dataset: { focus: 'edit' }, onclick: () => replaceChildren(item, editForm()) }, 'Edit'),
          h('button', { type: 'button', class: 'button button-quiet button-danger', dataset: { focus: 'delete' }, onclick: () => replaceChildren(item, confirmDelete()) }, 'Delete')),
      ]
    }

    function editForm () {
      const title = h('input', { name: 'title', required: true, maxlength: 200, value: task.title })
      const description = h('textarea', { name: 'description', rows: 3, maxlength: 5000 })
      description.value = task.description
      const error = errorBox()
      const form = h('form', { class: 'stack task-edit' },
        field('Title', title),
        field('Description', description),
        error,
        h('div', { class: 'row' },
          h('button', { type: 'submit', class: 'button button-primary' }, 'Save'),
          h('button', { type: 'button', class: 'button button-secondary', onclick: () => show('edit') }, 'Cancel')))
      submitForm(form, {
        notify,
        error,
        work: async () => replaceWith((await api.updateTask(task.id, { title: title.value, description: description.value })).task, 'edit'),
        done: (failure) => { if (failure) title.focus() },
      })
      // Escape leaves the form as Cancel does.
      form.addEventListener('keydown', (event) => { if (event.key === 'Escape') show('edit') })
      queueMicrotask(() => title.focus())
      return form
    }

    function confirmDelete () {
      return confirmRemoval({
        row: item,
        notify,
        question: ['Delete ', h('strong', {}, `“${task.title}”`), '? This can’t be undone.'],
        confirmLabel: 'Delete task',
        cancelLabel: 'Keep it',
        remove: () => api.deleteTask(task.id),
        restore: () => show('delete'),
        removed: (neighbour) => {
          updateEmpty()
          notify('Task deleted.')
          // The focus goes to the next task's checkbox (or the previous one's, or the new-task field).
          ;(neighbour?.querySelector('[data-focus="check"]') ?? title).focus()
        },
      })
    }

    show()
    return item
  }

  const title = h('input', { name: 'title', required: true, maxlength: 200, placeholder: 'What needs doing?', autocomplete: 'off' })
  const description = h('textarea', { name: 'description', rows: 2, maxlength: 5000, placeholder: 'Details (optional)' })
  const createError = errorBox()
  const create = h('form', { class: 'card stack task-new' },
    field('New task', title),
    field('Description', description),
    createError,
    h('div', { class: 'row row-end' }, h('button', { type: 'submit', class: 'button button-primary' }, 'Add task')))
  submitForm(create, {
    notify,
    error: createError,
    work: async () => {
      const body = { title: title.value }
      if (description.value !== '') body.description = description.value
      const { task } = await api.createTask(body)
      list.prepend(taskItem(task))
      create.reset()
      updateEmpty()
    },
    done: () => title.focus(),
  })

  pages.start()

  return h('section', { class: 'screen' },
    h('h1', { tabindex: '-1' }, 'My tasks'),
    create,
    h('div', { class: 'card list-card' }, status, empty, list,
      h('div', { class: 'list-more' }, pages.loadMore)))
}
