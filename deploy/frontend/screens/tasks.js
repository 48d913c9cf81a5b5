import { api } from '../api.js'
import { busy, field, formatDate, h, pagedList, replaceChildren } from '../dom.js'
import { friendlyMessage } from '../errors.js'
import { showError } from './auth.js'

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

  /** One task, shown read-only; it swaps itself for an edit form or a delete confirmation. */
  function taskItem (task) {
    const item = h('li', { class: 'task', dataset: { id: task.id } })
    const show = () => replaceChildren(item, taskView())
    const replaceWith = (updated) => { task = updated; show() }

    function taskView () {
      item.classList.toggle('task-done', task.done)
      const checkbox = h('input', {
        type: 'checkbox', class: 'task-check', checked: task.done, 'aria-label': `Done: ${task.title}`,
      })
      checkbox.addEventListener('change', async () => {
        checkbox.disabled = true
        try {
          replaceWith((await api.updateTask(task.id, { done: checkbox.checked })).task)
        } catch (error) {
          checkbox.checked = task.done
          checkbox.disabled = false
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
          h('button', { type: 'button', class: 'button button-quiet', onclick: () => replaceChildren(item, editForm()) }, 'Edit'),
          h('button', { type: 'button', class: 'button button-quiet button-danger', onclick: () => replaceChildren(item, confirmDelete()) }, 'Delete')),
      ]
    }

    function editForm () {
      const title = h('input', { name: 'title', required: true, maxlength: 200, value: task.title })
      const description = h('textarea', { name: 'description', rows: 3, maxlength: 5000 })
      description.value = task.description
      const error = h('p', { class: 'form-error', role: 'alert', hidden: true })
      const form = h('form', { class: 'stack task-edit' },
        field('Title', title),
        field('Description', description),
        error,
        h('div', { class: 'row' },
          h('button', { type: 'submit', class: 'button button-primary' }, 'Save'),
          h('button', { type: 'button', class: 'button button-secondary', onclick: show }, 'Cancel')))
      form.addEventListener('submit', (event) => {
        event.preventDefault()
        busy(form, async () => {
          try {
            replaceWith((await api.updateTask(task.id, { title: title.value, description: description.value })).task)
          } catch (error_) {
            showError(error, friendlyMessage(error_))
          }
        })
      })
      queueMicrotask(() => title.focus())
      return form
    }

    function confirmDelete () {
      const keep = h('button', { type: 'button', class: 'button button-secondary', onclick: show }, 'Keep it')
      queueMicrotask(() => keep.focus())
      return h('div', { class: 'task-confirm', role: 'group', 'aria-label': 'Confirm delete' },
        h('p', {}, 'Delete ', h('strong', {}, `“${task.title}”`), '? This can’t be undone.'),
        h('div', { class: 'row' },
          h('button', {
            type: 'button',
            class: 'button button-danger-solid',
            onclick: async (event) => {
              event.currentTarget.disabled = true
              try {
                await api.deleteTask(task.id)
                item.remove()
                updateEmpty()
                notify('Task deleted.')
              } catch (error) {
                notify(friendlyMessage(error), 'error')
                show()
              }
            },
          }, 'Delete task'),
          keep))
    }

    show()
    return item
  }

  const title = h('input', { name: 'title', required: true, maxlength: 200, placeholder: 'What needs doing?', autocomplete: 'off' })
  const description = h('textarea', { name: 'description', rows: 2, maxlength: 5000, placeholder: 'Details (optional)' })
  const createError = h('p', { class: 'form-error', role: 'alert', hidden: true })
  const create = h('form', { class: 'card stack task-new' },
    field('New task', title),
    field('Description', description),
    createError,
    h('div', { class: 'row row-end' }, h('button', { type: 'submit', class: 'button button-primary' }, 'Add task')))
  create.addEventListener('submit', (event) => {
    event.preventDefault()
    showError(createError, null)
    busy(create, async () => {
      try {
        const body = { title: title.value }
        if (description.value !== '') body.description = description.value
        const { task } = await api.createTask(body)
        list.prepend(taskItem(task))
        create.reset()
        updateEmpty()
      } catch (error) {
        showError(createError, friendlyMessage(error))
      }
    }).then(() => title.focus())
  })

  pages.start()

  return h('section', { class: 'screen' },
    h('h1', { tabindex: '-1' }, 'My tasks'),
    create,
    h('div', { class: 'card list-card' }, status, empty, list,
      h('div', { class: 'list-more' }, pages.loadMore)))
}
