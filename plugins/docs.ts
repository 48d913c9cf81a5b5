import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

/**
 * The OpenAPI document, generated from the routes' own schemas (so it cannot drift from what is
 * validated), at /api/docs/json, with Swagger UI at /api/docs. Registered before the routes, as
 * @fastify/swagger collects them as they are added. DOCS=false turns both off.
 */
export default fp(async (app) => {
  if (!app.config.docs) return
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'cookie-auth-api',
        description: 'Sign-in with HttpOnly cookies (or a Bearer token), per-user tasks, admin user management and an audit log.',
        version: '0.1.0',
      },
      tags: [
        { name: 'auth', description: 'Accounts, sessions and tokens' },
        { name: 'mfa', description: 'Second factors: TOTP, recovery codes, the second step of a sign-in' },
        { name: 'tasks', description: "The caller's own tasks" },
        { name: 'users', description: 'User management (admin)' },
        { name: 'audit', description: 'The audit log (admin)' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
      components: {
        securitySchemes: {
          cookieAuth: { type: 'apiKey', in: 'cookie', name: app.config.accessCookieName, description: 'Set by POST /api/auth/login' },
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'From POST /api/auth/token' },
        },
      },
    },
  })
  await app.register(swaggerUi, {
    routePrefix: '/api/docs',
    // Swagger UI runs scripts and styles of its own: this policy replaces the API's deny-all one on
    // the docs routes only.
    staticCSP: true,
    // ...minus upgrade-insecure-requests, which would break the page on plain-HTTP development hosts.
    transformStaticCSP: (header) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
    uiConfig: { docExpansion: 'list', deepLinking: true },
  })
}, { name: 'docs', dependencies: ['config'] })
