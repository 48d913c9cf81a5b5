import neostandard from 'neostandard'
import drizzle from 'eslint-plugin-drizzle'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'dist.*/**', 'drizzle/**', 'node_modules/**', '.tap/**', 'coverage/**', 'deploy/frontend/**'] }),
  {
    plugins: { drizzle },
    rules: {
      // An update or delete without a where clause touches every row: make it impossible by accident.
      'drizzle/enforce-delete-with-where': ['error', { drizzleObjectName: ['db', 'tx'] }],
      'drizzle/enforce-update-with-where': ['error', { drizzleObjectName: ['db', 'tx'] }],
    },
  },
]
