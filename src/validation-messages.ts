import type { FastifySchemaValidationError } from 'fastify'
import type { SchemaErrorDataVar } from 'fastify/types/schema.js'
import { PATTERN_RULES } from './schemas.js'

type AjvError = FastifySchemaValidationError & { parentSchema?: { anyOf?: Array<{ const?: unknown }> } }

const TYPE_NAMES: Record<string, string> = {
  string: 'text', integer: 'a whole number', number: 'a number', boolean: 'true or false', object: 'an object', array: 'a list', null: 'null',
}

const FORMAT_NAMES: Record<string, string> = { uuid: 'a UUID', 'date-time': 'a date and time (ISO 8601)', email: 'an e-mail address', uri: 'a URL' }

const plural = (count: unknown, word: string) => `${String(count)} ${word}${count === 1 ? '' : 's'}`

/** One Ajv error as a sentence that names the field (`body/title`) and says the rule in words. */
function describe (error: AjvError, dataVar: SchemaErrorDataVar): string {
  const field = `${dataVar}${error.instancePath}`
  const params = error.params as Record<string, unknown>
  switch (error.keyword) {
    case 'additionalProperties': return `${field}/${String(params.additionalProperty)} is not a field this request takes`
    case 'required': return `${field}/${String(params.missingProperty)} is required`
    case 'minLength': return `${field} must be at least ${plural(params.limit, 'character')}`
    case 'maxLength': return `${field} must be at most ${plural(params.limit, 'character')}`
    case 'minimum': return `${field} must be at least ${String(params.limit)}`
    case 'maximum': return `${field} must be at most ${String(params.limit)}`
    case 'minProperties': return `${field} must have at least ${plural(params.limit, 'field')}`
    case 'type': return `${field} must be ${TYPE_NAMES[String(params.type)] ?? String(params.type)}`
    case 'format': return `${field} must be ${FORMAT_NAMES[String(params.format)] ?? `in the format ${String(params.format)}`}`
    case 'pattern': return `${field} ${PATTERN_RULES.get(String(params.pattern)) ?? 'is not in the expected form'}`
    case 'const': return `${field} must be ${JSON.stringify(params.allowedValue)}`
    case 'enum': return `${field} must be one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}`
    default: return `${field} ${error.message ?? 'is not valid'}`
  }
}

/**
 * Fastify's `schemaErrorFormatter`: the message of a 400 for bad input. Ajv's own words (`body must
 * NOT have additional properties`, a raw regular expression) say neither which field nor what is
 * wanted. A union of constants (a role) is "one of: user, admin" rather than its first branch's error.
 */
export function validationError (errors: FastifySchemaValidationError[], dataVar: SchemaErrorDataVar): Error {
  const all = errors as AjvError[]
  const union = all.find((error) => error.keyword === 'anyOf')
  const choices = union?.parentSchema?.anyOf?.map((branch) => branch.const)
  if (union !== undefined && choices !== undefined && choices.every((choice) => choice !== undefined)) {
    return new Error(`${dataVar}${union.instancePath} must be one of: ${choices.map(String).join(', ')}`)
  }
  const first = all[0]
  return new Error(first === undefined ? `${dataVar} is not valid` : describe(first, dataVar))
}
