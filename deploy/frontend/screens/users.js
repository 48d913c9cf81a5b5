import { api } from '../api.js'
import { formatDate, h, pagedList, replaceChildren } from '../dom.js'
import { friendlyMessage } from '../errors.js'

const PAGE_SIZE = 20

export function usersScreen ({ session, notify }) {
  const rows = h('ul', { class: 'user-list', 'aria-label': 'Users' })
  const pages = pagedList({
    list: rows,
    fetchPage: (cursor) => api.listUsers(cursor, PAGE_SIZE),
    render: (user) => userRow(user),
    onError: (error) => notify(friendlyMessage(error), 'error'),
  })

  function userRow (user) {
    const row = h('li', { class: 'user', dataset: { id: user.id } })
    const isMe = user.id === session.user.id

    function view () {
      const role = h('select', { class: 'select', 'aria-label': `Role of ${user.username}`, disabled: isMe },
        h('option', { value: 'user' }, 'User'),
        h('option', { value: 'admin' }, 'Admin'))
      role.value = user.role
      role.addEventListener('change', async () => {
        role.disabled = true
        try {
          user = (await api.changeRole(user.id, role.value)).user
          notify(`${user.username} is now ${user.role === 'admin' ? 'an admin' : 'a user'}.`)
        } catch (error) {
          role.value = user.role
          notify(friendlyMessage(error), 'error')
        } finally {
          role.disabled = false
        }
      })
      return [
        h('div', { class: 'user-main' },
          h('p', { class: 'user-name' }, user.username, isMe ? h('span', { class: 'badge' }, 'You') : null),
          h('p', { class: 'task-meta' }, `Joined ${formatDate(user.createdAt)}`)),
        h('div', { class: 'user-actions' },
          role,
          h('button', {
            type: 'button',
            class: 'button button-quiet button-danger',
            disabled: isMe,
            title: isMe ? 'You can delete your own account from the API, not from here' : undefined,
            onclick: () => replaceChildren(row, confirm()),
          }, 'Delete')),
      ]
    }

    function confirm () {
      const keep = h('button', { type: 'button', class: 'button button-secondary', onclick: () => replaceChildren(row, view()) }, 'Cancel')
      queueMicrotask(() => keep.focus())
      return h('div', { class: 'task-confirm', role: 'group', 'aria-label': 'Confirm delete' },
        h('p', {}, 'Delete ', h('strong', {}, user.username), ' with all their tasks and sessions? This can’t be undone.'),
        h('div', { class: 'row' },
          h('button', {
            type: 'button',
            class: 'button button-danger-solid',
            onclick: async (event) => {
              event.currentTarget.disabled = true
              try {
                await api.deleteUser(user.id)
                row.remove()
                notify(`${user.username} was deleted.`)
              } catch (error) {
                notify(friendlyMessage(error), 'error')
                replaceChildren(row, view())
              }
            },
          }, 'Delete user'),
          keep))
    }

    replaceChildren(row, view())
    return row
  }

  pages.start()

  return h('section', { class: 'screen' },
    h('h1', { tabindex: '-1' }, 'Users'),
    h('p', { class: 'muted' }, 'Everyone with an account, newest first. A new role applies on the user’s next request.'),
    h('div', { class: 'card list-card' }, rows, h('div', { class: 'list-more' }, pages.loadMore)))
}
