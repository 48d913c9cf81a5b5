import { api } from '../api.js'
import { confirmation, confirmRemoval, formatDate, h, pagedList, replaceChildren } from '../dom.js'
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

    const roleName = (role) => role === 'admin' ? 'an admin' : 'a user'
    const show = (focusOn) => {
      replaceChildren(row, view())
      if (focusOn) row.querySelector(`[data-focus="${focusOn}"]`)?.focus()
    }

    function view () {
      const role = h('select', { class: 'select', 'aria-label': `Role of ${user.username}`, disabled: isMe, dataset: { focus: 'role' } },
        h('option', { value: 'user' }, 'User'),
        h('option', { value: 'admin' }, 'Admin'))
      role.value = user.role
      // A role is power over every account: picking one in the list only asks; the change needs a yes.
      role.addEventListener('change', () => replaceChildren(row, confirmRole(role.value)))
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
            dataset: { focus: 'delete' },
            title: isMe ? 'You can delete your own account from the API, not from here' : undefined,
            onclick: () => replaceChildren(row, confirmDelete()),
          }, 'Delete')),
      ]
    }

    function confirmRole (newRole) {
      return confirmation({
        question: ['Make ', h('strong', {}, user.username), ` ${roleName(newRole)}? `,
          newRole === 'admin' ? 'Admins can see every user, change roles and delete accounts.' : 'They lose the admin pages on their next request.'],
        confirmLabel: 'Change role',
        danger: newRole === 'admin',
        onCancel: () => show('role'),
        onConfirm: async () => {
          notify(null)
          try {
            user = (await api.changeRole(user.id, newRole)).user
            notify(`${user.username} is now ${roleName(user.role)}.`)
          } catch (error) {
            notify(friendlyMessage(error), 'error')
          }
          show('role')
        },
      })
    }

    function confirmDelete () {
      return confirmRemoval({
        row,
        notify,
        question: ['Delete ', h('strong', {}, user.username), ' with all their tasks and sessions? This can’t be undone.'],
        confirmLabel: 'Delete user',
        remove: () => api.deleteUser(user.id),
        restore: () => show('delete'),
        removed: (neighbour) => {
          notify(`${user.username} was deleted.`)
          neighbour?.querySelector('[data-focus="role"]:not(:disabled), [data-focus="delete"]:not(:disabled)')?.focus()
        },
      })
    }

    show()
    return row
  }

  pages.start()

  return h('section', { class: 'screen' },
    h('h1', { tabindex: '-1' }, 'Users'),
    h('p', { class: 'muted' }, 'Everyone with an account, newest first. A new role applies on the user’s next request.'),
    h('div', { class: 'card list-card' }, rows, h('div', { class: 'list-more' }, pages.loadMore)))
}
