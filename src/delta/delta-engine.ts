// The delta engine (the xdelta role of DESIGN.md section 4): a whole-file
// rewrite becomes a Rebuild op, copy ranges of the base plus literal inserts.
export { computeDelta, type Delta, type DeltaOptions, type DeltaStats } from './compute-delta.js'
export { applyDelta, checkRebuild, type ApplyOptions, type RebuildInput } from './apply-delta.js'
export { deltaWireSize } from './pieces.js'
