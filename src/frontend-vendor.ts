import { copyFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { projectRoot } from './paths.js'

/**
 * Browser modules the example frontend imports from `vendor/`, taken from node_modules rather than
 * committed: `npm run build` copies them into deploy/frontend/vendor/ (git-ignored) for Nginx, and
 * the development frontend server serves them straight from node_modules.
 */
export const FRONTEND_VENDOR: Readonly<Record<string, string>> = {
  // The QR code of the otpauth:// URL on the enrolment screen (MIT, no dependencies).
  'qrcode.mjs': join('node_modules', 'qrcode-generator', 'dist', 'qrcode.mjs'),
}

export function vendorSource (name: string): string | undefined {
  const relative = FRONTEND_VENDOR[name]
  return relative === undefined ? undefined : join(projectRoot(), relative)
}

export function copyFrontendVendor (): string[] {
  const target = join(projectRoot(), 'deploy', 'frontend', 'vendor')
  mkdirSync(target, { recursive: true })
  return Object.keys(FRONTEND_VENDOR).map((name) => {
    copyFileSync(vendorSource(name)!, join(target, name))
    return join(target, name)
  })
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  copyFrontendVendor()
}
