// zstd behind one small interface, from one of two implementations. Both
// write standard zstd frames, so mounts and nodes using either interoperate.
//  - zstd-napi (native, an optional dependency built at install): the
//    default. It was 1.4-3.9x faster in the codec benchmark, and its
//    decompression writes into a buffer of the size the frame header
//    promised, so a hostile frame cannot make it allocate more.
//  - zstd-codec (emscripten, the stack's named package): used where the
//    native one did not install, or with DELTAFS_ZSTD=zstd-codec. Its heap is
//    small, so callers keep inputs to a few MiB; transactions are capped
//    well below that.
import { createRequire } from 'node:module'
import zc from 'zstd-codec'
import type * as ZstdBinding from 'zstd-napi/binding.js'
import { DeltafsError } from '../util/errors.js'

export interface Compressor {
  /** Compressed bytes; a standard zstd frame. */
  compress (raw: Uint8Array): Uint8Array
  /** Decompresses and checks that exactly `rawSize` bytes came out. */
  decompress (data: Uint8Array, rawSize: number): Uint8Array
}

export type ZstdImplementation = 'zstd-napi' | 'zstd-codec'

const IMPLEMENTATIONS: ZstdImplementation[] = ['zstd-napi', 'zstd-codec']

let native: typeof ZstdBinding | null | undefined

/** The native binding, or null where it is not installed (or not wanted). */
function loadNative (): typeof ZstdBinding | null {
  if (native !== undefined) return native
  try {
    native = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof ZstdBinding
  } catch {
    native = null
  }
  return native
}

/** Which implementation loadZstd gives: DELTAFS_ZSTD if set, else the native one when installed. */
export function zstdImplementation (): ZstdImplementation {
  const wanted = process.env.DELTAFS_ZSTD
  if (wanted !== undefined && wanted !== '') {
    if (!IMPLEMENTATIONS.includes(wanted as ZstdImplementation)) {
      throw new DeltafsError('BAD_ARGUMENT', `DELTAFS_ZSTD must be one of ${IMPLEMENTATIONS.join(', ')}, not ${JSON.stringify(wanted)}`)
    }
    if (wanted === 'zstd-napi' && loadNative() === null) throw new DeltafsError('BAD_ARGUMENT', 'DELTAFS_ZSTD=zstd-napi, but zstd-napi is not installed (npm install zstd-napi)')
    return wanted as ZstdImplementation
  }
  return loadNative() !== null ? 'zstd-napi' : 'zstd-codec'
}

function badFrame (err: unknown): DeltafsError {
  return new DeltafsError('BAD_FRAME', `zstd payload does not decompress: ${String(err)}`, { cause: err })
}

function wrongSize (got: number, rawSize: number): DeltafsError {
  return new DeltafsError('BAD_FRAME', `zstd payload expands to ${got} bytes, header says ${rawSize}`)
}

function nativeCompressor (b: typeof ZstdBinding, level: number): Compressor {
  const cctx = new b.CCtx()
  const dctx = new b.DCtx()
  return {
    compress (raw) {
      const out = Buffer.allocUnsafe(b.compressBound(raw.length))
      return out.subarray(0, cctx.compress(out, raw, level))
    },
    decompress (data, rawSize) {
      // One byte more than promised: a frame that fills it says more than its header.
      const out = Buffer.allocUnsafe(rawSize + 1)
      let n: number
      try {
        n = dctx.decompress(out, data)
      } catch (err) {
        throw badFrame(err)
      }
      if (n !== rawSize) throw wrongSize(n, rawSize)
      return out.subarray(0, n)
    },
  }
}

type Simple = InstanceType<Parameters<Parameters<typeof zc.ZstdCodec.run>[0]>[0]['Simple']>
// The emscripten module loads once; each Compressor keeps its own level.
let loading: Promise<Simple> | undefined

async function wasmCompressor (level: number): Promise<Compressor> {
  loading ??= new Promise(resolve => { zc.ZstdCodec.run(binding => resolve(new binding.Simple())) })
  const simple = await loading
  return {
    compress (raw) {
      const out = simple.compress(raw, level)
      if (out == null) throw new DeltafsError('BAD_FRAME', 'zstd compression failed')
      return out
    },
    decompress (data, rawSize) {
      let out: Uint8Array | null
      try {
        out = simple.decompress(data)
      } catch (err) {
        throw badFrame(err)
      }
      if (out == null) throw new DeltafsError('BAD_FRAME', 'zstd payload does not decompress')
      if (out.length !== rawSize) throw wrongSize(out.length, rawSize)
      return out
    },
  }
}

export async function loadZstd (level = 1, implementation = zstdImplementation()): Promise<Compressor> {
  const b = implementation === 'zstd-napi' ? loadNative() : null
  if (implementation === 'zstd-napi' && b === null) throw new DeltafsError('BAD_ARGUMENT', 'zstd-napi is not installed')
  return b ? nativeCompressor(b, level) : wasmCompressor(level)
}
