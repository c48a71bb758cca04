// Volume and device names end up in keys, paths and logs: keep them plain.
import { DeltafsError } from './errors.js'

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export function isValidName (name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name)
}

export function checkVolumeName (name: string): string {
  if (!isValidName(name)) {
    throw new DeltafsError('BAD_ARGUMENT', `volume name "${name}" must be 1-64 characters of A-Z a-z 0-9 . _ - and start with a letter or digit`)
  }
  return name
}
