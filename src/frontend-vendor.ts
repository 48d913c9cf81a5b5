import { cpSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { isEntryPoint, projectRoot } from './paths.js'

/**
 * Browser modules the example frontend imports from `vendor/`, taken from node_modules rather than
 * committed: `npm run build` copies them into deploy/frontend/vendor/ (git-ignored) for Nginx, and
 * the development frontend server serves them straight from node_modules. An entry is a file, or a
 * folder of ES modules that import each other by relative paths (copied whole).
 */
export const FRONTEND_VENDOR: Readonly<Record<string, string>> = {
  // The QR code of the otpauth:// URL on the enrolment screen (MIT, no dependencies).
  'qrcode.mjs': join('node_modules', 'qrcode-generator', 'dist', 'qrcode.mjs'),
  // Passkey ceremonies in the page (MIT, no dependencies): its ES module build, entry index.js.
  simplewebauthn: join('node_modules', '@simplewebauthn', 'browser', 'esm'),
}

export function vendorSource (name: string): string | undefined {
  const relative = FRONTEND_VENDOR[name]
  return relative === undefined ? undefined : join(projectRoot(), relative)
}

/** The entries that are folders (served and copied as trees). */
export function vendorFolders (): string[] {
  return Object.keys(FRONTEND_VENDOR).filter((name) => statSync(vendorSource(name)!).isDirectory())
}

export function copyFrontendVendor (): string[] {
  const target = join(projectRoot(), 'deploy', 'frontend', 'vendor')
  mkdirSync(target, { recursive: true })
  return Object.keys(FRONTEND_VENDOR).map((name) => {
    // Type declarations and source maps stay behind: the browser needs only the modules.
    cpSync(vendorSource(name)!, join(target, name), { recursive: true, force: true, filter: (source) => !/\.(d\.ts|map)$/.test(source) })
    return join(target, name)
  })
}

if (isEntryPoint(import.meta.url)) {
  copyFrontendVendor()
}
