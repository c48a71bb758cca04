// libfuse (high-level API, without hard_remove) does not unlink a file that
// is still open: it renames it to ".fuse_hidden<node><counter>" in the same
// directory and unlinks that at the last release, so the open descriptors
// keep working. To the user, and so to the other mounts, the rename is the
// unlink; what happens to the hidden name afterwards is local.
const HIDDEN = /(^|\/)\.fuse_hidden[0-9a-f]{16}$/

export function isFuseHidden (path: string): boolean {
  return HIDDEN.test(path)
}
