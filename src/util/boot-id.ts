// Which boot of the machine this is: a process crash keeps the page cache
// (every write that returned is in the files), a reboot may not.
import fs from 'node:fs/promises'

/** Linux's random id of the current boot; undefined where there is none (macOS), which callers take as "maybe rebooted". */
export async function bootId (): Promise<string | undefined> {
  if (process.env.DELTAFS_BOOT_ID) return process.env.DELTAFS_BOOT_ID // tests: a reboot without one
  try {
    return (await fs.readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim() || undefined
  } catch {
    return undefined
  }
}
