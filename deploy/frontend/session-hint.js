/* global localStorage */
// The session cookies are HttpOnly and belong to the API's origin: this page cannot see them. So it
// remembers, for itself, whether it may be signed in, and asks the API who the user is only then: a
// visitor who never signed in causes no 401s (and no red lines in the console) on every load.
const KEY = 'tasks.maySignedIn'

export function maySignedIn () {
  try {
    return localStorage.getItem(KEY) === '1'
  } catch {
    return true // storage blocked: ask the API, as without this hint
  }
}

export function rememberSignedIn (isSignedIn) {
  try {
    if (isSignedIn) localStorage.setItem(KEY, '1')
    else localStorage.removeItem(KEY)
  } catch {}
}
