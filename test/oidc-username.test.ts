import t from 'tap'
import { isValidUsername } from '../src/rules.js'
import { sanitiseUsername, usernameFromClaims } from '../src/oidc-username.js'

t.test('a username is made from the first usable claim, within the username rule', async (t) => {
  t.equal(usernameFromClaims({ preferred_username: 'jdoe', name: 'Jane Doe', email: 'jane@example.com' }), 'jdoe')
  t.equal(usernameFromClaims({ preferred_username: 'jane.doe@contoso.com' }), 'jane.doe', "an address-shaped preferred_username (Entra's UPN) gives its local part")
  t.equal(usernameFromClaims({ name: 'José  Álvarez' }), 'Jose.Alvarez', 'accents dropped, spaces become one dot')
  t.equal(usernameFromClaims({ name: '李小龍', email: 'bruce+work@example.com' }), 'brucework', 'a name with nothing usable falls through to the e-mail')
  t.equal(usernameFromClaims({ preferred_username: 'ab' }), 'user', 'too short everywhere: a generic name (made unique by the caller)')
  t.equal(usernameFromClaims({}), 'user')
  t.equal(usernameFromClaims({ name: 42, preferred_username: null }), 'user', 'claims that are not strings are ignored')
})

t.test('sanitised names always pass the username rule', async (t) => {
  for (const raw of ['--a..b__c--', '   x y z   ', 'a'.repeat(80), 'Ünïcödé Nämé', '<script>alert(1)</script>', 'x\u0000y\u0000z', '.-_']) {
    const name = sanitiseUsername(raw)
    if (name !== undefined) t.ok(isValidUsername(name), `${JSON.stringify(raw)} → ${name}`)
  }
  t.equal(sanitiseUsername('a'.repeat(80))?.length, 32)
  t.equal(sanitiseUsername('--a..b__c--'), 'a.b_c')
  t.equal(sanitiseUsername('.-_'), undefined)
})
